// CPU benchmark of the engine (`ling bench --backend cpu`, performance.md §6): end-to-end prefill and decode
// tokens/s through ling::Engine, and every GEMM shape one prefill runs, timed through the engine's own GEMM
// path (ref::linear on the model's weights) beside a bare cblas_sgemm of the same shape on fresh random data in
// the same run — the ceiling. Median of `reps` after one warm-up. MoE expert GEMMs use the mean rows per
// expert (tokens · k / E). lm_head is excluded (prefill computes one logits row).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ling {

struct CpuBenchOptions {
  std::string model;                            // model folder
  std::vector<int64_t> prefill_tokens{128, 512};  // prompt lengths
  std::vector<int64_t> decode_batch{1, 4};      // sequences decoded together
  int64_t decode_steps = 16;                    // tokens per sequence in the decode measurement
  int64_t decode_context = 64;                  // prompt length before decoding
  int reps = 3;                                 // timed repetitions (median), after one warm-up
  int threads = 0;                              // 0 = library default
  uint64_t seed = 1;
};

struct GemmShapeResult {
  std::string op;          // e.g. "attn.qkv", "moe.expert.gate_up"
  int64_t M = 0, N = 0, K = 0;
  int64_t count = 0;       // calls of this shape in one prefill
  double engine_ms = 0;    // median, one call
  double sgemm_ms = 0;     // median, one call, bare cblas_sgemm
  double engine_gflops = 0, sgemm_gflops = 0;
  double ratio() const { return sgemm_ms > 0 && engine_ms > 0 ? sgemm_ms / engine_ms : 0; }
};

struct PrefillResult {
  int64_t tokens = 0;
  double ms = 0;                    // median end-to-end prefill
  double tokens_per_s = 0;
  double gemm_flops = 0;            // all GEMMs of one prefill
  double gemm_engine_ms = 0;        // Σ count · engine_ms
  double gemm_sgemm_ms = 0;         // Σ count · sgemm_ms
  double gemm_ratio = 0;            // gemm_sgemm_ms / gemm_engine_ms (the acceptance figure)
  double gemm_share = 0;            // gemm_engine_ms / ms
  std::vector<GemmShapeResult> shapes;
};

struct DecodeResult {
  int64_t batch = 0, steps = 0, context = 0;
  double ms_per_step = 0, tokens_per_s = 0;
};

struct CpuBenchReport {
  std::string model;
  int threads = 0;
  std::vector<PrefillResult> prefill;
  std::vector<DecodeResult> decode;
};

CpuBenchReport run_cpu_bench(const CpuBenchOptions& options);

}  // namespace ling
