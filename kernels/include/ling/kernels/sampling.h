// Greedy sampling on the device (architecture.md §2, ref::argmax): ids[r] = the index of the largest value of
// row r of fp32 logits [n, V] (row stride ld), the lowest index on ties. One CTA per row. Limits: NaN-free
// logits (a NaN's place in the order is not defined); asynchronous on `stream`, allocates nothing.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace ling::kernels {

struct ArgmaxRowsParams {
  const float* logits = nullptr;  // [n, V], row stride ld (0 = V)
  int32_t* ids = nullptr;         // [n]
  int64_t n = 0, V = 0, ld = 0;
};
void launch_argmax_rows(const ArgmaxRowsParams& p, cudaStream_t stream);

}  // namespace ling::kernels
