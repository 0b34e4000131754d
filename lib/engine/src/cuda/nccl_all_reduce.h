// The all-reduce of tensor parallelism over CUDA ranks of one process (one rank per local GPU), through NCCL
// (ncclCommInitAll over devices 0..tp−1, in-place fp32 sums in one group call). NVLink multicast stays off
// (NCCL_NVLS_ENABLE=0 unless the user set it). Errors name the NCCL call and its error string.
#pragma once
#include <cstdint>

#include "ling/engine/launch.h"
#include "ling/engine/tensor_parallel.h"

namespace ling {

// Available when the build found NCCL (LING_HAS_NCCL); throws otherwise.
AllReduce make_nccl_all_reduce(int64_t tp);
// One rank of a multi-process group (launch.h): the communicator forms from the id rank 0 writes to the
// rendezvous file; set-up and every collective are non-blocking NCCL calls polled with the launch timeout and
// the failure file of the other ranks, so a failed rank stops the others with its error instead of a hang.
AllReduce make_nccl_all_reduce_rank(const LaunchEnv& env, int device);

}  // namespace ling
