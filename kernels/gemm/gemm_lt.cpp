// cuBLASLt bf16 GEMM with a per-(shape, output type) plan cache and opt-in algorithm tuning (see gemm_lt.h).
// Row-major y = x·Wᵀ is the column-major product yᵀ[N, M] = W[N, K]·xᵀ: A = W seen as a column-major [K, N]
// matrix, transposed; B = x as [K, M].
#include "ling/kernels/gemm_lt.h"

#include <algorithm>
#include <vector>

#include "ling/core/error.h"

#define LING_LT_CHECK(stmt)                                                                                   \
  do {                                                                                                         \
    const cublasStatus_t ling_s_ = (stmt);                                                                     \
    if (ling_s_ != CUBLAS_STATUS_SUCCESS)                                                                      \
      LING_THROW(#stmt, " failed at ", __FILE__, ":", __LINE__, ": cuBLASLt status ", int(ling_s_));          \
  } while (0)

namespace ling::kernels {

LtGemm::LtGemm(cudaStream_t stream) : stream_(stream) {
  LING_LT_CHECK(cublasLtCreate(&handle_));
  const cudaError_t e = cudaMalloc(&workspace_, kWorkspace);
  LING_CHECK(e == cudaSuccess, "cuBLASLt workspace (", kWorkspace >> 20, " MiB): ", cudaGetErrorString(e));
}

LtGemm::~LtGemm() {
  for (auto& [k, p] : plans_) {
    cublasLtMatrixLayoutDestroy(p.a);
    cublasLtMatrixLayoutDestroy(p.b);
    cublasLtMatrixLayoutDestroy(p.c);
    cublasLtMatmulDescDestroy(p.desc);
  }
  if (workspace_) cudaFree(workspace_);
  if (handle_) cublasLtDestroy(handle_);
}

LtGemm::Plan& LtGemm::plan(int64_t M, int64_t N, int64_t K, bool bf16_out) {
  auto key = std::make_tuple(M, N, K, bf16_out);
  auto it = plans_.find(key);
  if (it != plans_.end()) return it->second;
  Plan p;
  LING_LT_CHECK(cublasLtMatmulDescCreate(&p.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F));
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  LING_LT_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
  LING_LT_CHECK(cublasLtMatmulDescSetAttribute(p.desc, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
  LING_LT_CHECK(cublasLtMatrixLayoutCreate(&p.a, CUDA_R_16BF, uint64_t(K), uint64_t(N), K));
  LING_LT_CHECK(cublasLtMatrixLayoutCreate(&p.b, CUDA_R_16BF, uint64_t(K), uint64_t(M), K));
  LING_LT_CHECK(cublasLtMatrixLayoutCreate(&p.c, bf16_out ? CUDA_R_16BF : CUDA_R_32F, uint64_t(N), uint64_t(M), N));
  cublasLtMatmulPreference_t pref = nullptr;
  LING_LT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const size_t ws = kWorkspace;
  LING_LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
  cublasLtMatmulHeuristicResult_t res{};
  int found = 0;
  const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(handle_, p.desc, p.a, p.b, p.c, p.c, pref, 1, &res, &found);
  cublasLtMatmulPreferenceDestroy(pref);
  LING_CHECK(st == CUBLAS_STATUS_SUCCESS && found > 0, "cuBLASLt: no bf16 GEMM algorithm for M ", M, " N ", N, " K ",
             K, " (status ", int(st), ")");
  p.algo = res.algo;
  return plans_.emplace(key, p).first->second;
}

void LtGemm::matmul(const Plan& p, const void* w, const void* x, void* y) {
  const float one = 1.0f, zero = 0.0f;
  LING_LT_CHECK(cublasLtMatmul(handle_, p.desc, &one, w, p.a, x, p.b, &zero, y, p.c, y, p.c, &p.algo, workspace_,
                               kWorkspace, stream_));
}

void LtGemm::run(const void* w, const void* x, float* y, int64_t M, int64_t N, int64_t K) {
  if (M == 0 || N == 0) return;
  matmul(plan(M, N, K, false), w, x, y);
}

void LtGemm::run_bf16(const void* w, const void* x, void* y, int64_t M, int64_t N, int64_t K) {
  if (M == 0 || N == 0) return;
  matmul(plan(M, N, K, true), w, x, y);
}

int LtGemm::tune(const void* w, const void* x, void* y, int64_t M, int64_t N, int64_t K, bool bf16_out,
                 int candidates) {
  if (M == 0 || N == 0) return 0;
  Plan& p = plan(M, N, K, bf16_out);
  std::vector<cublasLtMatmulHeuristicResult_t> res(size_t(std::max(1, candidates)));
  cublasLtMatmulPreference_t pref = nullptr;
  LING_LT_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const size_t ws = kWorkspace;
  LING_LT_CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
  int found = 0;
  const cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(handle_, p.desc, p.a, p.b, p.c, p.c, pref,
                                                           int(res.size()), res.data(), &found);
  cublasLtMatmulPreferenceDestroy(pref);
  if (st != CUBLAS_STATUS_SUCCESS || found <= 1) return 0;
  cudaEvent_t a = nullptr, b = nullptr;
  LING_CHECK(cudaEventCreate(&a) == cudaSuccess && cudaEventCreate(&b) == cudaSuccess, "cuBLASLt tune: no events");
  int best = 0;
  float best_ms = 0;
  for (int i = 0; i < found; ++i) {
    if (res[size_t(i)].state != CUBLAS_STATUS_SUCCESS) continue;
    Plan q = p;
    q.algo = res[size_t(i)].algo;
    matmul(q, w, x, y);  // warm-up
    cudaEventRecord(a, stream_);
    for (int r = 0; r < 3; ++r) matmul(q, w, x, y);
    cudaEventRecord(b, stream_);
    cudaEventSynchronize(b);
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    if (best_ms == 0 || ms < best_ms) best = i, best_ms = ms;
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  p.algo = res[size_t(best)].algo;
  return best;
}

}  // namespace ling::kernels
