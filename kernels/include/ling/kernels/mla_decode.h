// Absorbed MLA decode attention over a paged latent cache (architecture.md §2.7 step 7), split-KV:
//   s_h(t) = (q̃_h · c_t + q_pe_h · k_pe_t) · scale,  u_h = Σ_t softmax_t(s_h) c_t      (t < seq_len[b])
// with q̃_h = W_UK_hᵀ q_nope_h (absorbed by the caller, fp32) and o_h = W_UV_h u_h applied by the caller.
// Cache rows are [c (512) ‖ k_pe (64)] bf16, in pages of 64 tokens; page_table[b] lists the pages of sequence b
// in one pool (`cache`), or each sequence has its own contiguous rows (`seq_cache[b]`, no page table).
// Two paths: fp32 q on CUDA cores (fp32-accurate), or bf16 q on tensor cores for bandwidth at 64 heads: heads as
// the M dimension, softmax weights split into bf16 hi + lo for P·C — mma.sync m16n8k16 in tiles of 16 or 64
// heads, or (`wgmma`, the default) above 16 heads warpgroup MMAs (64 heads per CTA, pages of 64 tokens).
// Each sequence's context is cut into `splits` ranges of whole pages processed by separate CTAs (fp32 partial
// maxima, sums and accumulators in the workspace), then a combine kernel merges them.
// The tests convert these params to ling::ref::MlaDecodeParams (tests/kernels/mla_params.h).
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace ling::kernels {

constexpr int64_t kMlaLatent = 512;   // kv_lora_rank
constexpr int64_t kMlaRope = 64;      // qk_rope_head_dim
constexpr int64_t kMlaRow = kMlaLatent + kMlaRope;
constexpr int64_t kMlaPage = 64;      // tokens per cache page

struct MlaDecodeParams {
  const float* q = nullptr;           // fp32 [B, nh, 576]: q̃ (512) ‖ q_pe after RoPE (64), or null with q_bf16
  const uint16_t* q_bf16 = nullptr;   // bf16 [B, nh, 576]: when set, the tensor-core path (fp32 accumulation,
                                      // softmax weights as bf16 hi + lo; fp32-accurate for a bf16 query)
  const uint16_t* cache = nullptr;    // bf16 [num_pages, 64, 576]: the page pool, or null with seq_cache
  const int32_t* page_table = nullptr;  // [B, max_pages] page ids into `cache` (device)
  const uint16_t* const* seq_cache = nullptr;  // instead of cache + page_table: [B] device pointers to each
                                               // sequence's contiguous bf16 rows [≥ seq_len[b], 576] (device array)
  const int32_t* seq_len = nullptr;   // [B] context length of each sequence (device), ≤ max_pages · 64
  float* u = nullptr;                 // fp32 [B, nh, 512]: attention output in latent space
  void* workspace = nullptr;          // mla_decode_workspace_bytes(...) bytes (device)
  int64_t B = 0, nh = 0, max_pages = 0;
  int64_t max_seq_len = 0;            // host-side bound of seq_len (sizes the split plan)
  float scale = 1.0f;
  int64_t splits = 0;                 // 0 = chosen from B, nh, max_seq_len and the SM count
  bool wgmma = true;                  // tensor cores above 16 heads: the warpgroup-MMA kernel (mla_decode_wgmma.cu);
                                      // false keeps mma.sync there (for comparison)
  bool bf16_softmax_weights = false;  // wgmma path: softmax weights enter P·C as one bf16 operand (no lo part):
                                      // bf16-operand precision, fewer MMAs
  int64_t num_pages = 0;              // pages in the pool `cache` (needed by `tma` with the pool)
  const void* seq_maps = nullptr;     // with seq_cache and `tma`: [B] device tensor maps of each sequence's rows
                                      // (kMlaSeqMapBytes each, 64-byte aligned; mla_encode_seq_map)
  bool tma = false;                   // with bf16_softmax_weights, and the page pool or seq_maps: pages loaded by the
                                      // tensor memory accelerator (mla_decode_tma.cu) instead of cp.async
  bool pingpong = false;              // with bf16_softmax_weights: the ping-pong schedule (mla_decode_pingpong.cu:
                                      // warpgroups own alternate pages, scores computed once, softmax of one
                                      // warpgroup beside the other's MMAs)
};

// Pure host plan: context splits per sequence for this shape and path on `num_sms` SMs (1 to 4 full waves).
int64_t mla_decode_splits(int64_t B, int64_t nh, int64_t max_seq_len, int64_t requested, int num_sms,
                          bool tensor_cores);
size_t mla_decode_workspace_bytes(int64_t B, int64_t nh, int64_t max_seq_len, int64_t requested, int num_sms,
                                  bool tensor_cores);
void launch_mla_decode(const MlaDecodeParams& p, cudaStream_t stream);

// Host: the tensor map (kMlaSeqMapBytes, into `out`, 64-byte aligned) of one sequence's contiguous bf16 rows
// [cap_rows, 576] at `rows` (device), as MlaDecodeParams::seq_maps holds them; rows past cap_rows read as zeros.
// Throws where the driver offers no tensor maps.
constexpr size_t kMlaSeqMapBytes = 128;
void mla_encode_seq_map(void* out, const uint16_t* rows, int64_t cap_rows);

}  // namespace ling::kernels
