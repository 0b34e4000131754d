// A side stream that forks from the backend's stream and joins it again: work on it (the decode step's L2
// prefetches) runs beside the main stream's kernels. Inside a graph capture the fork and join become graph edges
// (the side stream joins the capture through the fork event), so the captured step holds the side kernels as a
// parallel branch; every fork must be joined before the capture ends.
#pragma once
#include <cuda_runtime.h>

#include "device_memory.h"

namespace ling::cuda {

class SideBranch {
 public:
  SideBranch() = default;
  SideBranch(const SideBranch&) = delete;
  SideBranch& operator=(const SideBranch&) = delete;
  ~SideBranch() {
    if (fork_) cudaEventDestroy(fork_);
    if (join_) cudaEventDestroy(join_);
    if (side_) cudaStreamDestroy(side_);
  }
  // The side stream, ordered after everything queued on `main` so far.
  cudaStream_t fork(cudaStream_t main) {
    if (!side_) {
      LING_CUDA_CHECK(cudaStreamCreateWithFlags(&side_, cudaStreamNonBlocking));
      LING_CUDA_CHECK(cudaEventCreateWithFlags(&fork_, cudaEventDisableTiming));
      LING_CUDA_CHECK(cudaEventCreateWithFlags(&join_, cudaEventDisableTiming));
    }
    LING_CUDA_CHECK(cudaEventRecord(fork_, main));
    LING_CUDA_CHECK(cudaStreamWaitEvent(side_, fork_, 0));
    open_ = true;
    return side_;
  }
  // `main` waits for everything queued on the side stream (nothing when no fork is open).
  void join(cudaStream_t main) {
    if (!open_) return;
    open_ = false;
    LING_CUDA_CHECK(cudaEventRecord(join_, side_));
    LING_CUDA_CHECK(cudaStreamWaitEvent(main, join_, 0));
  }
  bool open() const { return open_; }

 private:
  cudaStream_t side_ = nullptr;
  cudaEvent_t fork_ = nullptr, join_ = nullptr;
  bool open_ = false;
};

}  // namespace ling::cuda
