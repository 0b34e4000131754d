// Device memory of the CUDA backend: error-check macros, stream-ordered allocations (dev_alloc), an owning
// float array (DevF), a growing cache array with capacity (DevVec), the per-step bump arena whose chunks are
// never freed (StepArena: addresses captured by decode-step graphs stay valid), and a graph handle (CudaGraph).
// Internal to src/cuda/ (cuda_backend.h).
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <memory>
#include <vector>

#include "ling/core/error.h"
#include "ling/engine/backend.h"

#define LING_CUDA_CHECK(stmt)                                                                                 \
  do {                                                                                                         \
    const cudaError_t ling_e_ = (stmt);                                                                        \
    if (ling_e_ != cudaSuccess) {                                                                              \
      int ling_d_ = -1;                                                                                        \
      cudaGetDevice(&ling_d_);                                                                                 \
      LING_THROW(#stmt, " failed at ", __FILE__, ":", __LINE__, " on device ", ling_d_, ": ",                 \
                 cudaGetErrorString(ling_e_));                                                                 \
    }                                                                                                          \
  } while (0)
#define LING_CUBLAS_CHECK(stmt)                                                                               \
  do {                                                                                                         \
    const cublasStatus_t ling_s_ = (stmt);                                                                     \
    if (ling_s_ != CUBLAS_STATUS_SUCCESS) {                                                                    \
      int ling_d_ = -1;                                                                                        \
      cudaGetDevice(&ling_d_);                                                                                 \
      LING_THROW(#stmt, " failed at ", __FILE__, ":", __LINE__, " on device ", ling_d_, ": cuBLAS status ",   \
                 int(ling_s_));                                                                                \
    }                                                                                                          \
  } while (0)


namespace ling {

// Device memory of n floats (or bytes for raw), freed with the last owner.
// Stream-ordered allocations from the current device's memory pool (CUDA's caching allocator): allocation and
// free are enqueued on the legacy default stream, which orders them after the work of the backend's (blocking)
// stream without a host synchronisation, so scratch buffers are reused without cudaMalloc/cudaFree stalls.
inline std::shared_ptr<void> dev_alloc(size_t bytes) {
  if (bytes == 0) return {};  // no device call: empty members are built before the device is checked
  void* p = nullptr;
  int dev = 0;
  LING_CUDA_CHECK(cudaGetDevice(&dev));
  LING_CUDA_CHECK(cudaMallocAsync(&p, bytes, 0));
  return std::shared_ptr<void>(p, [dev](void* q) {
    if (!q) return;
    int cur = 0;
    cudaGetDevice(&cur);
    if (cur != dev) cudaSetDevice(dev);
    cudaFreeAsync(q, 0);
    if (cur != dev) cudaSetDevice(cur);
  });
}
struct DevF {
  std::shared_ptr<void> own;
  float* p = nullptr;
  explicit DevF(int64_t n = 0) : own(dev_alloc(sizeof(float) * size_t(std::max<int64_t>(n, 0)))), p(static_cast<float*>(own.get())) {}
};

// A growing device array of floats (cache rows appended at the end).
struct DevVec {
  std::shared_ptr<void> own;
  float* p = nullptr;
  int64_t size = 0, cap = 0;
  // Capacity for `total` floats (doubling, at least `min_cap`); true when the storage moved.
  bool reserve(int64_t total, int64_t min_cap, cudaStream_t s) {
    if (total <= cap) return false;
    const int64_t nc = std::max({2 * cap, total, min_cap});
    std::shared_ptr<void> o = dev_alloc(sizeof(float) * size_t(nc));
    if (size) LING_CUDA_CHECK(cudaMemcpyAsync(o.get(), p, sizeof(float) * size, cudaMemcpyDeviceToDevice, s));
    own = o;
    p = static_cast<float*>(o.get());
    cap = nc;
    return true;
  }
  // Returns the storage after the append: it moves when the capacity grows, so a pointer taken before is stale.
  const float* append(const float* src, int64_t n, cudaStream_t s) {
    reserve(size + n, 0, s);
    if (n) LING_CUDA_CHECK(cudaMemcpyAsync(p + size, src, sizeof(float) * n, cudaMemcpyDeviceToDevice, s));
    size += n;
    return p;
  }
  // `rows` rows of `width` floats read at row stride `ld` (one strided copy).
  void append_rows(const float* src, int64_t ld, int64_t rows, int64_t width, cudaStream_t s) {
    reserve(size + rows * width, 0, s);
    if (rows > 0 && width > 0)
      LING_CUDA_CHECK(cudaMemcpy2DAsync(p + size, sizeof(float) * width, src, sizeof(float) * ld, sizeof(float) * width,
                                        rows, cudaMemcpyDeviceToDevice, s));
    size += rows * width;
  }
};

// Scratch of one decode step: bump allocation from chunks that are never freed (addresses stay valid for the
// graphs that captured them); reset at every step.
class StepArena {
 public:
  float* get(int64_t n) {
    const size_t bytes = (sizeof(float) * size_t(std::max<int64_t>(n, 1)) + 255) & ~size_t(255);
    while (at_ < chunks_.size() && used_ + bytes > sizes_[at_]) {
      ++at_;
      used_ = 0;
    }
    if (at_ == chunks_.size()) {
      const size_t sz = std::max(bytes, size_t(64) << 20);
      void* p = nullptr;
      LING_CUDA_CHECK(cudaMalloc(&p, sz));
      chunks_.emplace_back(p, [](void* q) { cudaFree(q); });
      sizes_.push_back(sz);
      used_ = 0;
    }
    float* r = reinterpret_cast<float*>(static_cast<char*>(chunks_[at_].get()) + used_);
    used_ += bytes;
    return r;
  }
  void reset() { at_ = 0; used_ = 0; }

 private:
  std::vector<std::shared_ptr<void>> chunks_;
  std::vector<size_t> sizes_;
  size_t at_ = 0, used_ = 0;
};

struct CudaGraph final : StepGraph {
  cudaGraphExec_t exec = nullptr;
  ~CudaGraph() override { if (exec) cudaGraphExecDestroy(exec); }
};

}  // namespace ling
