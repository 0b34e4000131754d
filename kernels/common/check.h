// CUDA error checks for kernel launchers (house-style.md §5): a failing runtime call throws ling::Error naming
// the statement, the file:line and the CUDA error string; launchers call LING_CUDA_CHECK(cudaGetLastError()).
#pragma once
#include <cuda_runtime_api.h>

#include "ling/core/error.h"

#define LING_CUDA_CHECK(stmt)                                                                     \
  do {                                                                                            \
    const cudaError_t ling_cuda_err_ = (stmt);                                                    \
    if (ling_cuda_err_ != cudaSuccess)                                                            \
      LING_THROW(#stmt, " failed: ", cudaGetErrorName(ling_cuda_err_), " (",                      \
                 cudaGetErrorString(ling_cuda_err_), ") at ", __FILE__, ":", __LINE__);           \
  } while (0)
