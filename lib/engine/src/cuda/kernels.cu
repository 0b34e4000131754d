// Simple fp32 kernels of the CUDA backend (architecture.md §2), each mirroring its ling_ref op: fp64 sums where
// the reference uses them, the same operation order elsewhere. Correctness first: one block per row or head; the
// Lightning token-by-token recurrence serves head dims the chunked kernels do not cover.
#include <cuda_bf16.h>

#include <cmath>

#include "kernels.cuh"

namespace ling::cuda {
namespace {

constexpr int kThreads = 256;
inline unsigned blocks_for(int64_t n) { return unsigned((n + kThreads - 1) / kThreads); }

__global__ void k_gather(const float* x, int64_t ldx, const int64_t* rows, float* out, int64_t n, int64_t H) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= n * H) return;
  out[i] = x[rows[i / H] * ldx + i % H];
}
__global__ void k_scatter(const float* src, const int64_t* slot, float* dst, int64_t n, int64_t H) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= n * H) return;
  dst[slot[i / H] * H + i % H] = src[i];
}
__global__ void k_add(float* h, const float* d, int64_t n) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i < n) h[i] += d[i];
}
__global__ void k_add_bias(float* y, const float* b, int64_t M, int64_t N, int64_t ldy) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i < M * N) y[(i / N) * ldy + i % N] += b[i % N];
}
// grid nh; the state of one head lives in global memory
__global__ void k_lightning(const float* q, const float* k, const float* v, int64_t ld, float* o, int64_t ldo,
                            float* state, const float* g, int64_t T, int64_t nh, int64_t d, float scale) {
  const int64_t h = blockIdx.x;
  float* S = state + h * d * d;
  const float decay = expf(g[h]);
  for (int64_t t = 0; t < T; ++t) {
    const float* qr = q + t * ld + h * d;
    const float* kr = k + t * ld + h * d;
    const float* vr = v + t * ld + h * d;
    for (int64_t e = threadIdx.x; e < d * d; e += blockDim.x) S[e] = decay * S[e] + kr[e / d] * vr[e % d];
    __syncthreads();
    for (int64_t b = threadIdx.x; b < d; b += blockDim.x) {
      double acc = 0.0;
      for (int64_t a = 0; a < d; ++a) acc += double(qr[a] * scale) * double(S[a * d + b]);
      o[t * ldo + h * d + b] = float(acc);
    }
    __syncthreads();
  }
}
__global__ void k_mla_expand(const float* kv, const float* lat, float* K, float* V, int64_t S, int64_t nh, int64_t dn,
                             int64_t dr, int64_t dv, int64_t r) {
  const int64_t jh = blockIdx.x, j = jh / nh;
  const float* src = kv + jh * (dn + dv);
  float* kd = K + jh * (dn + dr);
  for (int64_t i = threadIdx.x; i < dn; i += blockDim.x) kd[i] = src[i];
  for (int64_t i = threadIdx.x; i < dr; i += blockDim.x) kd[dn + i] = lat[j * (r + dr) + r + i];
  for (int64_t i = threadIdx.x; i < dv; i += blockDim.x) V[jh * dv + i] = src[dn + i];
}
__global__ void k_f32_to_bf16(const float* x, int64_t ldx, __nv_bfloat16* y, int64_t rows, int64_t cols) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= rows * cols) return;
  const int64_t r = i / cols, c = i % cols;
  y[i] = __float2bfloat16_rn(x[r * ldx + c]);
}

__global__ void k_bf16_to_f32(const __nv_bfloat16* x, float* y, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) y[i] = __bfloat162float(x[i]);
}

__global__ void k_lengths_from_positions(const int64_t* pos, int32_t* len, int64_t n) {
  const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) len[i] = int32_t(pos[i] + 1);
}

__global__ void k_moe_combine(const float* ye, const float* w, float* out, int64_t n, int64_t k, int64_t H) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= n * H) return;
  const int64_t t = i / H, h = i % H;
  float acc = 0.0f;
  for (int64_t j = 0; j < k; ++j) acc += ye[(t * k + j) * H + h] * w[t * k + j];
  out[i] += acc;
}

}  // namespace

void gather_rows(const float* x, int64_t ldx, const int64_t* rows, float* out, int64_t n, int64_t H, cudaStream_t s) {
  if (n * H > 0) k_gather<<<blocks_for(n * H), kThreads, 0, s>>>(x, ldx, rows, out, n, H);
}
void scatter_rows(const float* src, const int64_t* slot, float* dst, int64_t n, int64_t H, cudaStream_t s) {
  if (n * H > 0) k_scatter<<<blocks_for(n * H), kThreads, 0, s>>>(src, slot, dst, n, H);
}
void add(float* h, const float* d, int64_t n, cudaStream_t s) {
  if (n > 0) k_add<<<blocks_for(n), kThreads, 0, s>>>(h, d, n);
}
void add_bias(float* y, const float* bias, int64_t M, int64_t N, int64_t ldy, cudaStream_t s) {
  if (M * N > 0) k_add_bias<<<blocks_for(M * N), kThreads, 0, s>>>(y, bias, M, N, ldy);
}
void lightning(const float* q, const float* k, const float* v, int64_t ld, float* o, int64_t ldo, float* state,
               const float* g, int64_t T, int64_t nh, int64_t d, float scale, cudaStream_t s) {
  if (T * nh > 0) k_lightning<<<unsigned(nh), kThreads, 0, s>>>(q, k, v, ld, o, ldo, state, g, T, nh, d, scale);
}
void mla_expand(const float* kv, const float* latent, float* K, float* V, int64_t S, int64_t nh, int64_t dn,
                int64_t dr, int64_t dv, int64_t r, cudaStream_t s) {
  if (S * nh > 0) k_mla_expand<<<unsigned(S * nh), 64, 0, s>>>(kv, latent, K, V, S, nh, dn, dr, dv, r);
}
void moe_combine(const float* ye, const float* w, float* out, int64_t n, int64_t k, int64_t H, cudaStream_t s) {
  if (n * H > 0) k_moe_combine<<<blocks_for(n * H), kThreads, 0, s>>>(ye, w, out, n, k, H);
}

void f32_to_bf16(const float* x, int64_t ldx, void* y, int64_t rows, int64_t cols, cudaStream_t s) {
  if (rows * cols > 0)
    k_f32_to_bf16<<<blocks_for(rows * cols), kThreads, 0, s>>>(x, ldx ? ldx : cols, static_cast<__nv_bfloat16*>(y),
                                                              rows, cols);
}

void bf16_to_f32(const void* x, float* y, int64_t n, cudaStream_t s) {
  if (n > 0) k_bf16_to_f32<<<blocks_for(n), kThreads, 0, s>>>(static_cast<const __nv_bfloat16*>(x), y, n);
}

void lengths_from_positions(const int64_t* pos, int32_t* len, int64_t n, cudaStream_t s) {
  if (n > 0) k_lengths_from_positions<<<blocks_for(n), kThreads, 0, s>>>(pos, len, n);
}

}  // namespace ling::cuda
