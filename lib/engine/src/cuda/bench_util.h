// Shared by the CUDA bench files (bench_cuda.cpp, bench_attention.cpp, bench_moe_prefill.cpp): a CUDA call check
// that throws ling::Error naming the call, and an owning device allocation.
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>

#include "ling/core/error.h"

#define BENCH_CUDA(stmt)                                                                              \
  do {                                                                                                \
    const cudaError_t e_ = (stmt);                                                                    \
    if (e_ != cudaSuccess) LING_THROW("ling bench --backend cuda: ", #stmt, ": ", cudaGetErrorString(e_)); \
  } while (0)

namespace ling {

struct DevBuf {  // owning device allocation
  void* p = nullptr;
  explicit DevBuf(size_t bytes) {
    if (bytes) BENCH_CUDA(cudaMalloc(&p, bytes));
  }
  ~DevBuf() { if (p) cudaFree(p); }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  template <typename T> T* as() const { return static_cast<T*>(p); }
};

}  // namespace ling
