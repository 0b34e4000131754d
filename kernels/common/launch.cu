// The process-wide switch of programmatic dependent launch (launch.h) and the once-per-device shared-memory
// attribute of launch.cuh.
#include <atomic>
#include <mutex>
#include <set>
#include <tuple>

#include "common/launch.cuh"
#include "ling/kernels/launch.h"

namespace ling::kernels {
namespace {
std::atomic<bool> g_pdl{false};
}  // namespace

void set_programmatic_launch(bool on) { g_pdl.store(on, std::memory_order_relaxed); }
bool programmatic_launch() { return g_pdl.load(std::memory_order_relaxed); }

void set_max_dynamic_smem(const void* kernel, int bytes) {
  static std::mutex mu;
  static std::set<std::tuple<int, const void*, int>> done;
  int dev = 0;
  LING_CUDA_CHECK(cudaGetDevice(&dev));
  const std::lock_guard<std::mutex> lock(mu);
  if (done.count({dev, kernel, bytes})) return;
  LING_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  done.insert({dev, kernel, bytes});
}

}  // namespace ling::kernels
