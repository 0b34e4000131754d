// NCCL all-reduce for CUDA ranks driven from one thread (see nccl_all_reduce.h). The ranks' kernels run on
// their own streams: each device is synchronised before the collective and the collective's stream after it,
// so the sum is complete on every rank when the call returns (correctness first; overlap comes later).
#include "nccl_all_reduce.h"

#include <cuda_runtime.h>

#include <cstdlib>
#include <memory>
#include <vector>

#include "ling/core/error.h"

#if LING_HAS_NCCL
#include <nccl.h>
#endif

namespace ling {

#if LING_HAS_NCCL
namespace {

#define LING_NCCL_CHECK(stmt)                                                                                 \
  do {                                                                                                         \
    const ncclResult_t ling_r_ = (stmt);                                                                       \
    if (ling_r_ != ncclSuccess) LING_THROW(#stmt, " failed: ", ncclGetErrorString(ling_r_));                  \
  } while (0)
#define LING_CUDA_OK(stmt)                                                                                    \
  do {                                                                                                         \
    const cudaError_t ling_e_ = (stmt);                                                                        \
    if (ling_e_ != cudaSuccess) LING_THROW(#stmt, " failed: ", cudaGetErrorString(ling_e_));                  \
  } while (0)

struct Comms {
  std::vector<ncclComm_t> comms;
  std::vector<cudaStream_t> streams;
  ~Comms() {
    for (size_t r = 0; r < comms.size(); ++r) {
      cudaSetDevice(int(r));
      if (streams[r]) cudaStreamDestroy(streams[r]);
      if (comms[r]) ncclCommDestroy(comms[r]);
    }
  }
};

}  // namespace

AllReduce make_nccl_all_reduce(int64_t tp) {
  int n = 0;
  LING_CUDA_OK(cudaGetDeviceCount(&n));
  LING_CHECK(tp <= n, "--tp ", tp, ": only ", n, " CUDA device", n == 1 ? "" : "s", " visible");
  ::setenv("NCCL_NVLS_ENABLE", "0", /*overwrite=*/0);  // NVLink multicast off unless the user set it
  auto c = std::make_shared<Comms>();
  c->comms.assign(size_t(tp), nullptr);
  c->streams.assign(size_t(tp), nullptr);
  std::vector<int> devs(static_cast<size_t>(tp));
  for (int64_t r = 0; r < tp; ++r) devs[size_t(r)] = int(r);
  LING_NCCL_CHECK(ncclCommInitAll(c->comms.data(), int(tp), devs.data()));
  for (int64_t r = 0; r < tp; ++r) {
    LING_CUDA_OK(cudaSetDevice(int(r)));
    LING_CUDA_OK(cudaStreamCreate(&c->streams[size_t(r)]));
  }
  return [c](std::vector<Buffer*>& parts) {
    LING_CHECK(parts.size() == c->comms.size(), "internal error: all-reduce over ", parts.size(), " buffers, ",
               c->comms.size(), " ranks");
    const size_t n = size_t(parts[0]->rows * parts[0]->cols);
    for (size_t r = 0; r < parts.size(); ++r) {
      LING_CUDA_OK(cudaSetDevice(int(r)));
      LING_CUDA_OK(cudaDeviceSynchronize());
    }
    LING_NCCL_CHECK(ncclGroupStart());
    for (size_t r = 0; r < parts.size(); ++r)
      LING_NCCL_CHECK(ncclAllReduce(parts[r]->data, parts[r]->data, n, ncclFloat, ncclSum, c->comms[r], c->streams[r]));
    LING_NCCL_CHECK(ncclGroupEnd());
    for (size_t r = 0; r < parts.size(); ++r) {
      LING_CUDA_OK(cudaSetDevice(int(r)));
      LING_CUDA_OK(cudaStreamSynchronize(c->streams[r]));
    }
  };
}

#else

AllReduce make_nccl_all_reduce(int64_t) {
  LING_THROW("--tp with --backend cuda needs NCCL, which this build did not find");
}

#endif

}  // namespace ling
