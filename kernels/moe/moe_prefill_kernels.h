// Device steps of the MoE prefill (moe_prefill.h), launched by moe_prefill.cpp. Every launch is asynchronous on
// `stream`; sizes that depend on the routing (rows per expert, tiles) are read on the device from `offsets` /
// `tiles`, so grids are sized by upper bounds and surplus blocks leave at once.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

namespace ling::kernels::moe_prefill_detail {

constexpr int kTileM = 128;  // rows of a grouped-GEMM tile (the `tiles` prefix counts these per expert)

struct Routing {
  const int32_t* ids = nullptr;       // [n·k]
  const float* weights = nullptr;     // [n·k]
  const uint16_t* const* gate_up = nullptr;  // [E] device table
  const uint16_t* const* down = nullptr;     // [E] device table
  int32_t* counts = nullptr;          // [E]
  int32_t* offsets = nullptr;         // [E + 1]
  int32_t* tiles = nullptr;           // [E + 1] prefix of ⌈counts / kTileM⌉
  int32_t* perm = nullptr;            // [n·k] permuted row → slot
  int32_t* row_of_slot = nullptr;     // [n·k] slot → permuted row or −1 (set to −1 by the caller first)
  int64_t n = 0, k = 0, E = 0;
};

// counts, offsets, tiles, perm, row_of_slot.
void launch_permute(const Routing& r, cudaStream_t stream);
// xp[r, :] = bf16(x[perm[r] / k, :]) for r < offsets[E].
void launch_gather(const float* x, const int32_t* perm, const int32_t* offsets, int64_t E, uint16_t* xp,
                   int64_t nk, int64_t k, int64_t H, cudaStream_t stream);
// act[r, :] = bf16(silu(gu[r, :I]) · gu[r, I:]) for r < offsets[E] (gu fp32 [rows, 2I]).
void launch_swiglu_rows(const float* gu, const int32_t* offsets, int64_t E, uint16_t* act, int64_t nk, int64_t I,
                        cudaStream_t stream);
// Grouped GEMMs over the experts' row blocks. gate_up: act[r, I] = SwiGLU(xp[r]·W_eᵀ) in bf16; down:
// y[r, H] = act[r]·D_eᵀ in fp32.
void launch_grouped_gate_up(const uint16_t* xp, const uint16_t* const* gate_up, const int32_t* offsets,
                            const int32_t* tiles, uint16_t* act, int64_t nk, int64_t E, int64_t H, int64_t I,
                            cudaStream_t stream);
void launch_grouped_down(const uint16_t* act, const uint16_t* const* down, const int32_t* offsets,
                         const int32_t* tiles, float* y, int64_t nk, int64_t E, int64_t H, int64_t I,
                         cudaStream_t stream);
// out[t] = (accumulate ? out[t] : 0) + Σ_s w[t,s]·y[row_of_slot[t·k + s]] (slots without a row add nothing).
void launch_combine(const float* y, const int32_t* row_of_slot, const float* weights, float* out, int64_t n,
                    int64_t k, int64_t H, bool accumulate, cudaStream_t stream);
// Opt the grouped GEMM kernels into their dynamic shared memory (once per device, before the first launch).
void prepare_grouped_gemm();

}  // namespace ling::kernels::moe_prefill_detail
