// The all-reduce of tensor parallelism over CUDA ranks of one process (one rank per local GPU), through NCCL
// (ncclCommInitAll over devices 0..tp−1, in-place fp32 sums in one group call). NVLink multicast stays off
// (NCCL_NVLS_ENABLE=0 unless the user set it). Errors name the NCCL call and its error string.
#pragma once
#include <cstdint>

#include "ling/engine/tensor_parallel.h"

namespace ling {

// Available when the build found NCCL (LING_HAS_NCCL); throws otherwise.
AllReduce make_nccl_all_reduce(int64_t tp);

}  // namespace ling
