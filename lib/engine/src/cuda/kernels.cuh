// Launchers of the simple fp32 kernels of the CUDA backend (kernels.cu), one per block-level helper; each mirrors
// the ling_ref op of the same name (architecture.md §2). Plain C++ signatures so host code needs no CUDA syntax.
// Limits: fp32 only, correctness first (no tiling, one block per row / head / query).
#pragma once
#include <cstdint>

#include <cuda_runtime.h>

namespace ling::cuda {

// True when p is 16-byte aligned (the vector loads of the decode kernels need it).
inline bool aligned16(const void* p) { return (reinterpret_cast<uintptr_t>(p) & 15) == 0; }

// out[i, :] = x[rows[i], :] (row gather), width H, x row stride ldx.
void gather_rows(const float* x, int64_t ldx, const int64_t* rows, float* out, int64_t n, int64_t H, cudaStream_t s);
void add(float* h, const float* d, int64_t n, cudaStream_t s);
// y[M, N] += bias[N] (row stride ldy).
void add_bias(float* y, const float* bias, int64_t M, int64_t N, int64_t ldy, cudaStream_t s);
// Lightning prefill in the chunked form (ref::lightning_chunked; lightning_chunked.cu), fp32, state [nh, d, d]
// updated in place, q/k/v rows at stride ld; supported for head dims whose state fits in shared memory.
bool lightning_chunked_supported(int64_t d);
void lightning_chunked(const float* q, const float* k, const float* v, int64_t ld, float* o, int64_t ldo, float* state,
                       const float* g, int64_t T, int64_t nh, int64_t d, float scale, cudaStream_t s);
// Lightning recurrence token by token (ref::lightning_recurrent), state [nh, d, d] updated in place.
void lightning(const float* q, const float* k, const float* v, int64_t ld, float* o, int64_t ldo, float* state,
               const float* g, int64_t T, int64_t nh, int64_t d, float scale, cudaStream_t s);
// MLA: K [S, nh, dn+dr] and V [S, nh, dv] from kv [S, nh, dn+dv] and the latent cache [S, r+dr].
void mla_expand(const float* kv, const float* latent, float* K, float* V, int64_t S, int64_t nh, int64_t dn,
                int64_t dr, int64_t dv, int64_t r, cudaStream_t s);
// dst[slot[i], :] = src[i, :] (row scatter), width H.
void scatter_rows(const float* src, const int64_t* slot, float* dst, int64_t n, int64_t H, cudaStream_t s);
// out[t, h] += Σ_j ye[t·k + j, h] · w[t·k + j] (top-k order, fp32).
void moe_combine(const float* ye, const float* w, float* out, int64_t n, int64_t k, int64_t H, cudaStream_t s);
// y[r, c] = bf16(x[r·ldx + c]) (round to nearest even) for rows × cols values; y is [rows, cols] bf16.
void f32_to_bf16(const float* x, int64_t ldx, void* y, int64_t rows, int64_t cols, cudaStream_t s);
// y[i] = x[i] for n bf16 values.
void bf16_to_f32(const void* x, float* y, int64_t n, cudaStream_t s);
// len[i] = pos[i] + 1 (int32): a decode step's context lengths from its device-side positions.
void lengths_from_positions(const int64_t* pos, int32_t* len, int64_t n, cudaStream_t s);


// Decode-step and fused kernels (decode_attention.cu, fused_norms.cu; norms, RoPE, embedding and SwiGLU are
// kernels/norm, kernels/rope and kernels/elementwise; the GEMV, routing and expert kernels kernels/gemv and
// kernels/moe): no host round trip, positions read from device memory.
// x[r, :] *= f[r] for rows × cols values.
void scale_rows(float* x, const float* f, int64_t rows, int64_t cols, cudaStream_t s);
// sumsq[r] = Σ_c o[r, c]² (fp64), then o = o · w ⊙ sigmoid(gate): the Lightning gate before a group
// normalisation that spans tensor-parallel ranks.
void gate_unnormed(float* o, const float* w, const float* gate, int64_t rows, int64_t width, double* sumsq,
                   cudaStream_t s);
// dst[*pos, :] = src[:] for a row of `width` values (cache append at a device-side position).
void write_row_at(const float* src, float* dst, int64_t width, const int64_t* pos, cudaStream_t s);
// Two rows in one launch: dst0 row *pos = src0, dst1 row *pos = src1 (e.g. a GQA step's K and V rows).
void write_rows_at(const float* src0, float* dst0, const float* src1, float* dst1, int64_t width, const int64_t* pos,
                   cudaStream_t s);
// Decode attention (ref::attention for one query per row) split over chunks of 128 keys: query t attends over
// rows j ≤ pos[t] of a cache with room for S rows; ws holds decode_attention_workspace(...) floats. wide_heads:
// 128-wide heads (dk = dv = 128, 16-byte aligned rows) take a pass whose warps load all their keys at once.
int64_t decode_attention_workspace(int64_t T, int64_t nh, int64_t S, int64_t dv);
void decode_attention(const float* q, int64_t ldq, const float* k, int64_t ldk, const float* v, int64_t ldv, float* o,
                      int64_t ldo, const int64_t* pos, int64_t T, int64_t S, int64_t nh, int64_t nkv, int64_t dk,
                      int64_t dv, float scale, float* ws, cudaStream_t s, bool wide_heads);
// Holds the stream for about ns nanoseconds (profiling: the host queues a whole step meanwhile, so that event
// times measure back-to-back device work rather than launch latency).
void spin(int64_t ns, cudaStream_t s);
// Absorbed MLA decode pieces (ref::mla_decode_absorbed), kv_b [nh·(dn + dv), r] bf16 or f32: qa [T, nh, r + dr]
// = (W_UK_hᵀ q_nope_h ‖ q_pe_h) from q [T, nh, dn + dr] (row stride ldq); o [T, nh, dv] = W_UV_h u_h from
// u [T, nh, r]. The scores and u between them are GEMMs over the latent cache (the backend's cuBLAS calls).
void mla_q_absorb(const float* q, int64_t ldq, const void* kv_b, bool bf16, float* qa, int64_t T, int64_t nh,
                  int64_t dn, int64_t dr, int64_t dv, int64_t r, cudaStream_t s);
void mla_out(const float* u, const void* kv_b, bool bf16, float* o, int64_t T, int64_t nh, int64_t dn, int64_t dv,
             int64_t r, cudaStream_t s);
// Per row of x [rows, S]: softmax of scale·x over columns j ≤ *pos (device), zeros after (in place).
void masked_softmax(float* x, int64_t rows, int64_t S, const int64_t* pos, float scale, cudaStream_t s);

}  // namespace ling::cuda
