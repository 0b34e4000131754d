// Token choice on the device (architecture.md §2, ref::argmax and ref::sample_with_draw).
//   argmax_rows: ids[r] = the index of the largest value of row r of fp32 logits [n, V] (row stride ld), the lowest
//                index on ties. Limits: NaN-free logits (a NaN's place in the order is not defined).
//   sample_rows: per row, ref::sample_with_draw's rule — temperature 0: argmax; otherwise the row sorted by
//                descending value (ties: lower index first; −0 equals +0), softmax of logits / temperature in
//                double over the top_k best (0 = all), cut to the smallest prefix with mass ≥ top_p, and the token
//                whose cumulative mass first exceeds u = (draw >> 11)·2⁻⁵³·mass. The sums run in chunks (one per
//                thread) rather than one by one, so a draw within ~1e-15 (relative) of a boundary between two
//                tokens may pick the neighbour of the host's choice; otherwise the ids equal the host's.
// Both are asynchronous on `stream` and allocate nothing; sample_rows copies the row specs from the host
// (not for CUDA graph capture).
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace ling::kernels {

struct ArgmaxRowsParams {
  const float* logits = nullptr;  // [n, V], row stride ld (0 = V)
  int32_t* ids = nullptr;         // [n]
  int64_t n = 0, V = 0, ld = 0;
};
void launch_argmax_rows(const ArgmaxRowsParams& p, cudaStream_t stream);

struct SampleSpec {
  float temperature = 0.0f;  // <= 0: greedy
  int32_t top_k = 0;         // 0 = all
  float top_p = 1.0f;
  uint64_t draw = 0;         // the row's splitmix64 output (ref::sample_draw)
};

struct SampleRowsParams {
  const float* logits = nullptr;     // [n, V], row stride ld (0 = V)
  const SampleSpec* specs = nullptr; // [n] host memory
  int32_t* ids = nullptr;            // [n] device
  int64_t n = 0, V = 0, ld = 0;
  void* workspace = nullptr;         // sample_rows_workspace_bytes(n, V) of device memory
};
size_t sample_rows_workspace_bytes(int64_t n, int64_t V);
void launch_sample_rows(const SampleRowsParams& p, cudaStream_t stream);

}  // namespace ling::kernels
