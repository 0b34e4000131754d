// The process-wide switch of programmatic dependent launch (launch.h), the resident-CTA count per kernel and the
// once-per-device shared-memory attribute of launch.cuh.
#include <atomic>
#include <mutex>
#include <map>
#include <utility>

#include "common/launch.cuh"
#include "ling/kernels/launch.h"

namespace ling::kernels {
namespace {
std::atomic<bool> g_pdl{false};
}  // namespace

void set_programmatic_launch(bool on) { g_pdl.store(on, std::memory_order_relaxed); }
bool programmatic_launch() { return g_pdl.load(std::memory_order_relaxed); }

int device_sm_count() {
  int dev = 0, sms = 0;
  LING_CUDA_CHECK(cudaGetDevice(&dev));
  LING_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  return sms;
}

long resident_ctas(const void* kernel, int threads) {
  static std::mutex mu;
  static std::map<std::pair<int, std::pair<const void*, int>>, long> known;
  int dev = 0;
  LING_CUDA_CHECK(cudaGetDevice(&dev));
  const std::lock_guard<std::mutex> lock(mu);
  const auto key = std::make_pair(dev, std::make_pair(kernel, threads));
  if (auto it = known.find(key); it != known.end()) return it->second;
  int per_sm = 0;
  LING_CUDA_CHECK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, 0));
  return known[key] = long(per_sm) * device_sm_count();
}

void set_max_dynamic_smem(const void* kernel, int bytes) {
  static std::mutex mu;
  static std::map<std::pair<int, const void*>, int> set_to;  // the largest size set so far per device and kernel
  int dev = 0;
  LING_CUDA_CHECK(cudaGetDevice(&dev));
  const std::lock_guard<std::mutex> lock(mu);
  int& cur = set_to[{dev, kernel}];
  if (bytes <= cur) return;
  LING_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes));
  cur = bytes;
}

}  // namespace ling::kernels
