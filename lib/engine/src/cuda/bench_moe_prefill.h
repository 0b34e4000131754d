// MoE prefill and dense bf16 GEMM rows of `ling bench --backend cuda` (bench_moe_prefill.cpp):
//   gemm.bf16 (bf16 output, algorithm tuned once by LtGemm::tune) and gemm.bf16.f32out (fp32 output, cuBLASLt's
//     first heuristic choice, as the CUDA backend's projections): kernels/gemm_lt.h at M 4096 for the Ling-2.5-1T
//     projection shapes (N, K) = (3·8192, 8192) Lightning qkv, (8192, 8192) dense / gate, (4096, 8192)
//     shared-expert gate_up, (8192, 2048) shared-expert down; FLOPs 2·M·N·K, bytes (M·K + N·K)·2 + M·N·(2 or 4);
//   moe.prefill (the path MoePrefill picks, named in the shape), moe.prefill.grouped / moe.prefill.lt (the
//     other path) and moe.prefill.lt8 (per-expert path over 8 side streams, large experts only): the routed
//     experts of one MoE layer (kernels/moe_prefill.h) for n = 4096 tokens at Ring-mini dims (H 2048, I 512,
//     E 256, k 8) and Ling-2.5-1T dims (H 8192, I 2048, E 256, k 8: 25.8 GB of bf16 expert weights), routed by
//     the device router from seeded uniform [−4, 4) logits (no bias, 8 groups, 4 kept, scale 2.5); permutation +
//     GEMMs + combine timed; FLOPs n·k·3·H·I·2, bytes = the bf16 weights of the experts with tokens + x read +
//     out written.
// The shape text carries the share of the run's gemm.ceiling TFLOP/s (and for moe rows the routing seed and the
// rows per expert, min..max, so that a peer can rebuild the same routing).
#pragma once
#include <vector>

#include "bench_attention.h"

namespace ling {

// `rows`: the rows so far (their gemm.ceiling row is the ceiling; none → the ceiling is measured here).
std::vector<CudaBenchRow> moe_prefill_bench_rows(const CudaBenchOptions& options, const CudaTimeFn& time,
                                                 const std::vector<CudaBenchRow>& rows);

}  // namespace ling
