// Kernel benchmarks on the GPU (`ling bench --backend cuda`, performance.md §6): the copy-bandwidth ceiling
// (device-to-device cudaMemcpy of ≥ 1 GiB, bytes read + written) and the ling kernels at Ling-2.5-1T shapes on
// seeded random data, timed with CUDA events around each call after warm-ups, L2 flushed (a 256 MiB write)
// before every timed call; median, min and max of `reps`. Bytes and FLOPs are counted from the shapes:
//   Lightning prefill: bytes T·nh·128·2·4 (q, k, v, o bf16), FLOPs nh·T·(4·64·128 + 4·128²) (chunk-64 form);
//   Lightning decode: bytes 2·B·nh·128²·4 (fp32 state read + written), FLOPs 4·B·nh·128²;
//   MLA absorbed decode: bytes B·ctx·576·2 (the bf16 latent cache read once), FLOPs 2·B·nh·ctx·(576 + 512).
//   Decode GEMV (gemv.h): bytes N·K·2 (bf16 weights; 4 for the fp32 router) + M·K·4 + M·N·4, FLOPs 2·M·N·K;
//   MoE route: bytes n·E·4 + E·4 + n·k·8; MoE experts (n tokens, k distinct experts each): gate_up bytes
//   n·k·2I·H·2, down + combine n·k·H·I·2, both together n·k·3·I·H·2 (activations ignored: < 0.1%);
//   argmax: bytes n·V·4.
// Throws ling::Error when no CUDA device is present or a launch fails.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ling {

struct CudaBenchOptions {
  std::vector<int64_t> prefill_tokens{8192, 32768, 131072};  // Lightning prefill T (batch 1)
  std::vector<int64_t> prefill_heads{64, 8};                 // 64 heads and one TP8 shard
  std::vector<int64_t> prefill_blocks{0};                    // sequence blocks per head (0 = the kernel's choice)
  std::vector<int64_t> decode_batch{1, 64, 256};             // Lightning decode batch sizes
  int64_t decode_heads = 64;
  struct MlaShape { int64_t batch, context, heads; };
  std::vector<MlaShape> mla{{64, 32768, 64}, {64, 32768, 8}, {32, 16384, 64}};  // paged cache, page 64
  int reps = 20;                                             // timed calls per shape (median)
  // Decode GEMV rows: every (N, K) at every M (bf16 weights), and the fp32 router GEMV (E × hidden) at M 1.
  struct GemvShape { int64_t N, K; };
  std::vector<GemvShape> gemv{{6144, 2048}, {2048, 2048}, {157184, 2048}, {3 * 8192, 8192}, {8192, 8192}};
  std::vector<int64_t> gemv_batch{1, 4, 8, 16};
  std::vector<GemvShape> gemv_router{{256, 8192}, {256, 2048}};
  // MoE decode rows: routed experts (H, I) for one token and k = 8 distinct experts.
  struct MoeShape { int64_t H, I; };
  std::vector<MoeShape> moe{{2048, 512}, {8192, 2048}};
  // End to end through the engine (bench_e2e.cpp) when `model` is set (the kernel benches are then skipped):
  // prefill of each e2e_prefill length (batch 1), and decode steps at each e2e_batch over each e2e_contexts cached
  // tokens. Decode bytes per step = projection weights touched (bf16 or f32 as on the device; per MoE layer
  // the expected number of distinct experts of B·k uniform picks) + the softmax caches read + the Lightning
  // states read and written, so "% of copy" is the share of the bandwidth roofline reached.
  std::string model;
  std::vector<int64_t> e2e_prefill{8192};
  std::vector<int64_t> e2e_batch{1};
  std::vector<int64_t> e2e_contexts{1024};  // cached tokens per sequence before the timed decode steps
  int64_t e2e_steps = 16;
  int warmup = 3;
  uint64_t seed = 1;
};

struct CudaBenchRow {
  std::string op;          // "copy.d2d", "lightning.prefill", "lightning.decode", "mla.decode"
  std::string shape;       // e.g. "T=32768 nh=64 d=128 bf16"
  int64_t T = 0, nh = 0, batch = 0, blocks = 0;  // T: tokens (prefill) or context (MLA); blocks: prefill, 0 = auto
  double ms = 0, ms_min = 0, ms_max = 0;  // median, min, max of the timed calls
  double bytes = 0, flops = 0;
  double gbps = 0, tflops = 0;
  double ceiling_pct = 0;  // gbps / measured copy bandwidth
  std::vector<double> samples_ms;
};

struct CudaBenchReport {
  std::string device;      // name, SMs, memory
  int sms = 0;
  int driver_version = 0, runtime_version = 0;
  double copy_gbps = 0;    // the ceiling
  std::string switches;    // the CUDA backend's switches set away from their defaults (cuda_switches.h), "" if none
  std::vector<CudaBenchRow> rows;
};

CudaBenchReport run_cuda_bench(const CudaBenchOptions& options);
// The engine rows of `options.model` (ceiling_pct filled against copy_gbps).
std::vector<CudaBenchRow> run_e2e_bench(const CudaBenchOptions& options, double copy_gbps);

}  // namespace ling
