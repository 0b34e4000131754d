// bf16 GEMMs through cuBLASLt (CUDA backend, MoE prefill): y[M, N] (fp32, or bf16 by run_bf16) = x[M, K] (bf16)
// · W[N, K]ᵀ (bf16), fp32 accumulation (CUBLAS_COMPUTE_32F). The algorithm is chosen once per (M, N, K, output
// type) by cuBLASLt's heuristic (or by tune) and cached; one workspace (32 MiB) serves every call on the stream.
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
  // The same product with a bf16 output y[M, N] (the fp32 accumulation rounded to nearest even).
  void run_bf16(const void* w, const void* x, void* y, int64_t M, int64_t N, int64_t K);
  // Opt-in tuning of one shape and output type: times up to `candidates` of cuBLASLt's heuristic algorithms on
  // these buffers (y is overwritten) and keeps the fastest for later calls of that shape. Synchronises the
  // stream: call once per shape, outside timed or captured regions. Returns the chosen candidate's rank (0 = the
  // heuristic's first choice).
  int tune(const void* w, const void* x, void* y, int64_t M, int64_t N, int64_t K, bool bf16_out, int candidates = 8);
  static constexpr size_t kWorkspace = size_t(32) << 20;

 private:
  struct Plan {
    cublasLtMatmulDesc_t desc = nullptr;
    cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr;
    cublasLtMatmulAlgo_t algo{};
  };
  // The plan of (M, N, K, bf16 output); a new plan takes the heuristic's first algorithm.
  Plan& plan(int64_t M, int64_t N, int64_t K, bool bf16_out);
  void matmul(const Plan& p, const void* w, const void* x, void* y);
  cublasLtHandle_t handle_ = nullptr;
  cudaStream_t stream_ = nullptr;
  void* workspace_ = nullptr;
  std::map<std::tuple<int64_t, int64_t, int64_t, bool>, Plan> plans_;
};

}  // namespace ling::kernels
