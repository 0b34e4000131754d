// Helpers of the kernel tests (label gpu): device detection (every test skips without a CUDA device), an owning
// device buffer, seeded random fills, and the fp32 tolerance rule shared by the kernel tests: per element
// |a − r| ≤ rtol·|r| + atol with atol = rtol · rms(reference) (scale-aware, so sums that cancel to ~0 are judged
// against the size of their terms), and a cosine gate.
#pragma once
#include <cuda_runtime_api.h>
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdint>
#include <random>
#include <vector>

#include "common/compare.h"
#include "ling/core/dtype.h"
#include "ling/core/error.h"

namespace ling::test {

inline bool have_cuda_device() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess && n > 0;
}
#define SKIP_WITHOUT_CUDA() \
  if (!::ling::test::have_cuda_device()) GTEST_SKIP() << "no CUDA device"

#define TEST_CUDA(stmt) ASSERT_EQ((stmt), cudaSuccess) << #stmt << ": " << cudaGetErrorString(cudaGetLastError())

// Owning device allocation of `bytes`.
struct DeviceBuffer {
  void* ptr = nullptr;
  size_t bytes = 0;
  explicit DeviceBuffer(size_t n) : bytes(n) {
    if (n && cudaMalloc(&ptr, n) != cudaSuccess) LING_THROW("cudaMalloc of ", n, " bytes failed");
  }
  ~DeviceBuffer() { if (ptr) cudaFree(ptr); }
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  template <typename T> T* as() const { return static_cast<T*>(ptr); }
  template <typename T> void upload(const std::vector<T>& h) {
    if (cudaMemcpy(ptr, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice) != cudaSuccess)
      LING_THROW("cudaMemcpy to the device failed");
  }
  template <typename T> std::vector<T> download(size_t count) const {
    std::vector<T> h(count);
    if (cudaMemcpy(h.data(), ptr, count * sizeof(T), cudaMemcpyDeviceToHost) != cudaSuccess)
      LING_THROW("cudaMemcpy from the device failed");
    return h;
  }
};

inline std::vector<float> uniform(size_t n, float lo, float hi, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}
// Values rounded to bf16 (what the kernel sees) and their bf16 bits.
inline std::vector<uint16_t> to_bf16(std::vector<float>& v) {
  std::vector<uint16_t> b(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    b[i] = f32_to_bf16(v[i]);
    v[i] = bf16_to_f32(b[i]);
  }
  return b;
}
inline std::vector<float> from_bf16(const std::vector<uint16_t>& b) {
  std::vector<float> v(b.size());
  for (size_t i = 0; i < b.size(); ++i) v[i] = bf16_to_f32(b[i]);
  return v;
}
inline double rms(const std::vector<float>& v) {
  double s = 0;
  for (float x : v) s += double(x) * x;
  return v.empty() ? 0.0 : std::sqrt(s / double(v.size()));
}

// all_close that also prints the one-line report (max abs/rel error, cosine distance) of every comparison.
inline ::testing::AssertionResult close_reported(const std::string& name, const std::vector<float>& a,
                                                 const std::vector<float>& r, const ref::CompareOptions& opt) {
  if (a.size() != r.size())
    return ::testing::AssertionFailure() << name << ": " << a.size() << " values vs " << r.size() << " in the reference";
  const ref::CompareReport rep = ref::compare_f32(name, {int64_t(a.size())}, a.data(), r.data(), opt);
  std::printf("  %s\n", rep.line().c_str());
  if (rep.ok) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << rep.line();
}

// fp32 kernel outputs: rtol 1e-4, atol = 1e-4 · rms(reference), cosine distance ≤ 1e-8.
inline ::testing::AssertionResult close_f32(const std::string& name, const std::vector<float>& a,
                                            const std::vector<float>& r) {
  return close_reported(name, a, r, tol(1e-4, 1e-4 * rms(r), 1e-8));
}
// bf16 kernel outputs: house-style.md §4 (rtol 2e-2, atol 1e-3, cosine 1e-5).
inline ::testing::AssertionResult close_bf16(const std::string& name, const std::vector<float>& a,
                                             const std::vector<float>& r) {
  return close_reported(name, a, r, tol(2e-2, 1e-3, 1e-5));
}

}  // namespace ling::test
