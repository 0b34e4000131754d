// bf16 GEMMs through cuBLASLt (CUDA backend, MoE prefill): y[M, N] (fp32) = x[M, K] (bf16) · W[N, K]ᵀ (bf16),
// fp32 accumulation (CUBLAS_COMPUTE_32F). The algorithm is chosen once per (M, N, K) by cuBLASLt's heuristic and
// cached; one workspace (32 MiB) serves every call on the backend's stream.
#pragma once
#include <cublasLt.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <map>
#include <memory>
#include <tuple>

namespace ling::kernels {

class LtGemm {
 public:
  explicit LtGemm(cudaStream_t stream);
  ~LtGemm();
  LtGemm(const LtGemm&) = delete;
  LtGemm& operator=(const LtGemm&) = delete;
  // w: [N, K] bf16 row-major; x: [M, K] bf16 row-major (row stride K); y: [M, N] fp32 row-major.
  void run(const void* w, const void* x, float* y, int64_t M, int64_t N, int64_t K);
  static constexpr size_t kWorkspace = size_t(32) << 20;

 private:
  struct Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };
  cublasLtHandle_t handle_ = nullptr;
  cudaStream_t stream_ = nullptr;
  void* workspace_ = nullptr;
  std::map<std::tuple<int64_t, int64_t, int64_t>, Plan> plans_;
};

}  // namespace ling::kernels
