// Tensor/expert-parallel scaling benchmark (`ling bench --tp N --ep M`, issue "multi-GPU"): the same decode
// measurement through Engine for the layouts TP 1, 2, 4, … up to N (EP = min(M, TP) where it divides TP),
// reporting per layout and batch the step time, tokens/s, tokens/s per rank, the speed-up over TP 1 and the
// share of the step spent in the all-reduce calls (host wall time, tensor_parallel.h TpCommStats). Works with
// CPU ranks (host sums; the numbers describe the CPU, not a GPU) and CUDA ranks (one GPU each, NCCL).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ling {

struct ScalingOptions {
  std::string model;
  std::string backend = "cpu";
  int64_t tp = 2, ep = 1;             // largest layout; smaller powers of two are measured too
  std::vector<int64_t> batch{1};      // sequences decoded together
  int64_t context = 256;              // prompt tokens before decoding
  int64_t steps = 16;                 // timed decode steps (median), after one warm-up step
  int threads = 0;                    // CPU backend threads (0 = default)
  uint64_t seed = 1;
};

struct ScalingRow {
  int64_t tp = 1, ep = 1, batch = 1, context = 0, steps = 0;
  double ms_per_step = 0;             // median
  double tokens_per_s = 0, tokens_per_s_per_rank = 0;
  double speedup = 0;                 // tokens/s over TP 1 at the same batch
  double comm_ms_per_step = 0;        // all-reduce wall time per step (mean over the timed steps)
  double comm_share = 0;              // comm_ms_per_step / mean step time
  int64_t all_reduces_per_step = 0;
};

// The layouts measured for --tp N --ep M: (1, 1), then (t, e) for t = 2, 4, … ≤ N with e = min(M, t) when it
// divides t, else 1. Throws for N < 1, M < 1 or M not dividing N.
std::vector<std::pair<int64_t, int64_t>> scaling_layouts(int64_t tp, int64_t ep);
std::vector<ScalingRow> run_scaling_bench(const ScalingOptions& options);

}  // namespace ling
