// Embedding lookup and SwiGLU (include/ling/kernels/elementwise.h): one thread per output value.
#include <cmath>

#include "common/check.h"
#include "common/launch.cuh"
#include "ling/kernels/elementwise.h"

namespace ling::kernels {
namespace {

constexpr int kThreads = 256;
unsigned blocks_for(int64_t n) { return unsigned((n + kThreads - 1) / kThreads); }

__global__ void k_embed(const int32_t* ids, const float* table, float* out, int64_t n, int64_t H) {
  pdl_enter();
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= n * H) return;
  out[i] = table[int64_t(ids[i / H]) * H + i % H];
}

__global__ void k_swiglu(const float* gu, float* out, int64_t rows, int64_t I, int64_t ldo) {
  pdl_enter();
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i >= rows * I) return;
  const int64_t r = i / I, c = i % I;
  const float a = gu[r * 2 * I + c], b = gu[r * 2 * I + I + c];
  out[r * ldo + c] = (a / (1.0f + expf(-a))) * b;
}

}  // namespace

void launch_embed(const EmbedParams& p, cudaStream_t stream) {
  LING_CHECK(p.n >= 0 && p.H > 0 && p.n * p.H < (int64_t(1) << 40), "launch_embed: n ", p.n, ", H ", p.H,
             " out of range");
  if (p.n == 0) return;
  LING_CHECK(p.ids && p.table && p.out, "launch_embed: ids, table or out is null");
  launch_pdl(k_embed, blocks_for(p.n * p.H), kThreads, 0, stream, p.ids, p.table, p.out, p.n, p.H);
  LING_CUDA_CHECK(cudaGetLastError());
}

void launch_swiglu(const SwigluParams& p, cudaStream_t stream) {
  LING_CHECK(p.rows >= 0 && p.I > 0 && p.rows * p.I < (int64_t(1) << 40), "launch_swiglu: rows ", p.rows, ", I ",
             p.I, " out of range");
  const int64_t ldo = p.ldo ? p.ldo : p.I;
  LING_CHECK(ldo >= p.I, "launch_swiglu: ldo ", ldo, " is smaller than I ", p.I);
  if (p.rows == 0) return;
  LING_CHECK(p.gu && p.out && p.out != p.gu, "launch_swiglu: gu or out is null, or out aliases gu");
  launch_pdl(k_swiglu, blocks_for(p.rows * p.I), kThreads, 0, stream, p.gu, p.out, p.rows, p.I, ldo);
  LING_CUDA_CHECK(cudaGetLastError());
}

}  // namespace ling::kernels
