// Routed experts of an MoE layer at prefill (architecture.md §2.4), given the routing (topk ids / weights on the
// device, e.g. from launch_moe_route):
//   out[t] = (accumulate ? out[t] : 0) + Σ_{s<k} w[t,s] · down_e(silu(gate_e(x̂_t)) ⊙ up_e(x̂_t)),  e = ids[t,s]
// with x̂ = bf16(x), each product on bf16 operands with fp32 accumulation, the SwiGLU activations rounded to bf16
// before the down projection (as the backend's per-expert bf16 GEMMs do), the expert outputs y kept in fp32 and
// summed in slot order s = 0..k−1 (deterministic: no atomics anywhere). An expert with a null pointer (gate_up or
// down) is not held here (expert parallelism) and contributes 0; so does an id outside [0, E).
// Steps on the device: count the slots per expert, stable permutation (by expert, then slot t·k + s), gather of
// the permuted rows as bf16 [n·k, H], the two expert GEMMs, combine. Two GEMM paths (MoeGemmPath):
//   Grouped:   own tensor-core grouped GEMMs (gate_up with SwiGLU fused into its epilogue, then down), one launch
//              each over all experts; no host synchronisation at all (CUDA-graph capturable).
//   PerExpert: one cuBLASLt GEMM per non-empty held expert (gate_up → fp32, SwiGLU kernel, down), spread over
//              the runner's side streams; ONE device→host copy of the E + 1 row offsets + stream sync per call.
//   Auto (default) picks by expert size (MoePrefill::resolve).
// Limits: n·k < 2^31, 1 ≤ k ≤ 32, 1 ≤ E ≤ 4096, H and I multiples of 8; x, out, workspace and every expert
// weight 16-byte aligned (the workspace 256-byte aligned).
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace ling::kernels {

class LtGemm;

enum class MoeGemmPath { Auto, Grouped, PerExpert };

struct MoePrefillParams {
  const float* x = nullptr;               // [n, H] fp32 token activations, row stride H
  const int32_t* topk_ids = nullptr;      // [n, k] device: expert of slot (t, s)
  const float* topk_weights = nullptr;    // [n, k] device: routing weight of slot (t, s)
  // Expert weight tables, E entries each (null = not held here): bf16 gate_up [2I, H] (rows [0, I) gate,
  // [I, 2I) up) and bf16 down [H, I], row-major. The same addresses as a device array (Grouped path and the
  // device-side permutation) and as a host array (PerExpert path: cuBLASLt takes host pointers). With the
  // backend's table [gate_up 0..E−1, shared, down 0..E−1, shared]: gate_up = tab, down = tab + E + 1.
  const uint16_t* const* gate_up_dev = nullptr;
  const uint16_t* const* down_dev = nullptr;
  const uint16_t* const* gate_up_host = nullptr;  // may be null for the Grouped path
  const uint16_t* const* down_host = nullptr;
  float* out = nullptr;                   // [n, H] fp32 (read first when accumulate)
  void* workspace = nullptr;              // moe_prefill_workspace_bytes(n, k, E, H, I) bytes, 256-byte aligned
  int64_t n = 0, k = 0, E = 0, H = 0, I = 0;
  bool accumulate = false;                // out += instead of out =
  MoeGemmPath path = MoeGemmPath::Auto;   // Auto: see MoePrefill::resolve
};

// Byte offsets of the workspace regions (all 256-byte aligned). Useful to callers after a run: `counts` holds
// the slots per held expert ([E] int32), `offsets` their exclusive prefix ([E + 1] int32, offsets[E] = rows
// used), `perm` the slot t·k + s of each permuted row ([n·k] int32), `row_of_slot` the inverse ([n·k], −1 for
// slots of experts not held).
struct MoePrefillLayout {
  size_t counts, offsets, tiles, perm, row_of_slot, xp, act, gu, y, total;
};
MoePrefillLayout moe_prefill_layout(int64_t n, int64_t k, int64_t E, int64_t H, int64_t I);
// Workspace of one call (= moe_prefill_layout(...).total): about n·k·(2H + 2I + 4·max(2I, H)) bytes (permuted
// bf16 rows, bf16 act, and one region for the PerExpert path's fp32 gate_up and then the fp32 expert outputs;
// 1.7 GB at n 4096, k 8, H 8192, I 2048). Allocate once for the largest n.
size_t moe_prefill_workspace_bytes(int64_t n, int64_t k, int64_t E, int64_t H, int64_t I);

// Runner: owns the PerExpert path's side streams, their events and cuBLASLt handles (one LtGemm and 32 MiB
// cuBLASLt workspace per side stream) and a pinned host buffer for the row offsets. Create once per device (on
// that device) and reuse; not thread-safe. run() is asynchronous on `stream` except for the one offsets copy +
// synchronisation of the PerExpert path; the side streams join `stream` before run() returns, so every later
// launch on `stream` sees the result. Throws ling::Error on bad parameters or a CUDA / cuBLASLt failure.
class MoePrefill {
 public:
  // lanes: side streams of the PerExpert path (1..16; 0 = PerExpert unavailable, no cuBLASLt resources).
  explicit MoePrefill(int lanes = 4);
  ~MoePrefill();
  MoePrefill(const MoePrefill&) = delete;
  MoePrefill& operator=(const MoePrefill&) = delete;
  void run(const MoePrefillParams& p, cudaStream_t stream);
  // The path run() takes: p.path unless Auto. Auto = PerExpert when this runner has lanes, the host tables are
  // given and the experts are large (H·I ≥ 2^23, e.g. Ling-2.5-1T's 8192 × 2048: each expert GEMM then streams
  // ≥ 32 MB of weights, well above the per-GEMM launch cost), else Grouped (measured on an H100: Ring-mini dims
  // Grouped 3.0× faster, Ling-2.5 dims PerExpert 1.4× faster at n 4096).
  MoeGemmPath resolve(const MoePrefillParams& p) const;

 private:
  struct Lane;
  std::vector<std::unique_ptr<Lane>> lanes_;
  cudaEvent_t fork_ = nullptr;
  int32_t* host_offsets_ = nullptr;  // pinned, [kMaxExperts + 1]
};

constexpr int64_t kMoePrefillMaxExperts = 4096;

}  // namespace ling::kernels
