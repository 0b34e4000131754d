// Backend-only element-wise kernels (architecture.md §2.6): the Lightning output gate without its group norm
// (tensor-parallel ranks whose norm groups span ranks finish it together), row scaling, and the profiler's spin
// kernel. The norms, RoPE and the gate with its GroupRMSNorm are kernels/norm and kernels/rope.
#include <cuda_bf16.h>

#include <cmath>

#include "device_util.cuh"
#include "kernels.cuh"

namespace ling::cuda {
namespace {

// grid rows: sumsq[row] = Σ_c o[row, c]² (fp64), then o = o · w ⊙ sigmoid(gate) — the Lightning output gate
// without its group normalisation (tensor-parallel ranks whose norm groups span ranks finish it together).
__global__ void k_gate_unnormed(float* o, const float* w, const float* gate, int64_t width, double* sumsq) {
  __shared__ double red[32];
  float* orow = o + blockIdx.x * width;
  const float* grow = gate + blockIdx.x * width;
  double ss = 0.0;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x) ss += double(orow[i]) * double(orow[i]);
  ss = block_sum_d(ss, red);
  if (threadIdx.x == 0) sumsq[blockIdx.x] = ss;
  for (int64_t i = threadIdx.x; i < width; i += blockDim.x)
    orow[i] = (orow[i] * w[i]) * (1.0f / (1.0f + expf(-grow[i])));
}


__global__ void k_scale_rows(float* x, const float* f, int64_t rows, int64_t cols) {
  const int64_t i = blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
  if (i < rows * cols) x[i] *= f[i / cols];
}


__global__ void k_spin(int64_t ns) {
  const long long t0 = clock64();
  // ~1.5 GHz: cycles ≈ 1.5·ns; good enough to hold the stream while the host queues a step.
  while (clock64() - t0 < 1.5 * double(ns)) __nanosleep(1000);
}


}  // namespace

void scale_rows(float* x, const float* f, int64_t rows, int64_t cols, cudaStream_t s) {
  if (rows * cols > 0) k_scale_rows<<<unsigned((rows * cols + 255) / 256), 256, 0, s>>>(x, f, rows, cols);
}


void gate_unnormed(float* o, const float* w, const float* gate, int64_t rows, int64_t width, double* sumsq,
                   cudaStream_t s) {
  if (rows > 0) k_gate_unnormed<<<unsigned(rows), 256, 0, s>>>(o, w, gate, width, sumsq);
}




void spin(int64_t ns, cudaStream_t s) { k_spin<<<1, 1, 0, s>>>(ns); }


}  // namespace ling::cuda
