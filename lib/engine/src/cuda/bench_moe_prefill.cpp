// MoE prefill and dense bf16 GEMM bench rows (bench_moe_prefill.h, performance.md §6). Host code only:
// launches go through ling_kernels; weights and activations come from the seeded device fills.
#include "bench_moe_prefill.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <string>

#include "ling/core/error.h"
#include "ling/kernels/fill.h"
#include "ling/kernels/gemm_lt.h"
#include "ling/kernels/moe.h"
#include "ling/kernels/moe_prefill.h"
#include "bench_util.h"

namespace ling {
namespace {

std::string pct_of(double tflops, double ceiling) {
  char b[64];
  std::snprintf(b, sizeof b, ", %.1f%% of gemm.ceiling", ceiling > 0 ? 100.0 * tflops / ceiling : 0.0);
  return b;
}

// op "gemm.bf16": bf16 output (as torch.matmul), algorithm tuned once (LtGemm::tune); "gemm.bf16.f32out": fp32
// output with cuBLASLt's first heuristic choice (the CUDA backend's projections); "gemm.bf16.f32out.tuned": fp32
// output, tuned; "gemm.ceiling": as "gemm.bf16.f32out".
CudaBenchRow gemm_row(int64_t M, int64_t N, int64_t K, const std::string& op, const CudaBenchOptions& o,
                      const CudaTimeFn& time_fn) {
  DevBuf w(size_t(N * K) * 2), x(size_t(M * K) * 2), y(size_t(M * N) * 4);
  kernels::launch_fill_uniform_bf16(w.as<uint16_t>(), N * K, -1.f, 1.f, o.seed + 50, nullptr);
  kernels::launch_fill_uniform_bf16(x.as<uint16_t>(), M * K, -1.f, 1.f, o.seed + 51, nullptr);
  kernels::LtGemm gemm(nullptr);
  const bool bf16_out = op == "gemm.bf16";
  const bool tuned = bf16_out || op == "gemm.bf16.f32out.tuned";
  CudaBenchRow r;
  r.op = op;
  r.batch = M;
  r.shape = "M=" + std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K);
  r.bytes = double(M * K + N * K) * 2 + double(M * N) * (bf16_out ? 2 : 4);
  r.flops = 2.0 * double(M) * double(N) * double(K);
  r.shape += bf16_out ? " bf16 out" : " fp32 out";
  if (tuned) r.shape += ", tuned (candidate " + std::to_string(gemm.tune(w.p, x.p, y.p, M, N, K, bf16_out)) + ")";
  if (bf16_out)
    time_fn([&] { gemm.run_bf16(w.p, x.p, y.p, M, N, K); }, r);
  else
    time_fn([&] { gemm.run(w.p, x.p, y.as<float>(), M, N, K); }, r);
  return r;
}

struct MoeDims {
  const char* name;
  int64_t H, I;
};

// One MoE layer's routed experts for n tokens: rows for the grouped path (moe.prefill) and the per-expert
// cuBLASLt path (moe.prefill.lt) on the same weights and routing.
void moe_rows(const MoeDims& d, int64_t n, double ceiling, const CudaBenchOptions& o, const CudaTimeFn& time_fn,
              std::vector<CudaBenchRow>& rows) {
  const int64_t E = 256, k = 8, H = d.H, I = d.I;
  const uint64_t seed = o.seed + 60;  // logits seed (the peer rebuilds the routing from it)
  DevBuf gu(size_t(E * 2 * I * H) * 2), dn(size_t(E * H * I) * 2), tab(size_t(2 * E) * 8);
  DevBuf logits(size_t(n * E) * 4), ids(size_t(n * k) * 4), wts(size_t(n * k) * 4), x(size_t(n * H) * 4),
      out(size_t(n * H) * 4), ws(kernels::moe_prefill_workspace_bytes(n, k, E, H, I));
  const float ag = 3.0f / std::sqrt(float(H)), ad = 2.7f / std::sqrt(float(I));
  kernels::launch_fill_uniform_bf16(gu.as<uint16_t>(), E * 2 * I * H, -ag, ag, o.seed + 61, nullptr);
  kernels::launch_fill_uniform_bf16(dn.as<uint16_t>(), E * H * I, -ad, ad, o.seed + 62, nullptr);
  kernels::launch_fill_uniform_f32(x.as<float>(), n * H, -1.f, 1.f, o.seed + 63, nullptr);
  kernels::launch_fill_uniform_f32(logits.as<float>(), n * E, -4.f, 4.f, seed, nullptr);
  std::vector<const uint16_t*> t(size_t(2 * E));
  for (int64_t e = 0; e < E; ++e) {
    t[size_t(e)] = gu.as<uint16_t>() + e * 2 * I * H;
    t[size_t(E + e)] = dn.as<uint16_t>() + e * H * I;
  }
  BENCH_CUDA(cudaMemcpy(tab.p, t.data(), t.size() * 8, cudaMemcpyHostToDevice));
  kernels::MoeRouteDevParams rp;
  rp.logits = logits.as<float>(), rp.topk_ids = ids.as<int32_t>(), rp.topk_weights = wts.as<float>();
  rp.n = n, rp.E = E, rp.k = k, rp.n_group = 8, rp.topk_group = 4, rp.routed_scaling_factor = 2.5f;
  kernels::launch_moe_route(rp, nullptr);

  kernels::MoePrefill runner;
  kernels::MoePrefillParams p;
  p.x = x.as<float>(), p.topk_ids = ids.as<int32_t>(), p.topk_weights = wts.as<float>();
  p.gate_up_dev = tab.as<const uint16_t*>(), p.down_dev = tab.as<const uint16_t*>() + E;
  p.gate_up_host = t.data(), p.down_host = t.data() + E;
  p.out = out.as<float>(), p.workspace = ws.p, p.n = n, p.k = k, p.E = E, p.H = H, p.I = I;
  runner.run(p, nullptr);  // once, for the rows per expert
  std::vector<int32_t> counts(static_cast<size_t>(E));
  BENCH_CUDA(cudaMemcpy(counts.data(), static_cast<char*>(ws.p) + kernels::moe_prefill_layout(n, k, E, H, I).counts,
                            counts.size() * 4, cudaMemcpyDeviceToHost));
  const auto [cmin, cmax] = std::minmax_element(counts.begin(), counts.end());
  const int64_t used = std::count_if(counts.begin(), counts.end(), [](int32_t c) { return c > 0; });
  const kernels::MoeGemmPath chosen = runner.resolve(p);
  const kernels::MoeGemmPath other =
      chosen == kernels::MoeGemmPath::Grouped ? kernels::MoeGemmPath::PerExpert : kernels::MoeGemmPath::Grouped;
  auto name = [](kernels::MoeGemmPath x) { return x == kernels::MoeGemmPath::Grouped ? "grouped" : "per-expert"; };
  for (auto path : {kernels::MoeGemmPath::Auto, other}) {
    p.path = path;
    CudaBenchRow r;
    r.op = path == kernels::MoeGemmPath::Auto ? "moe.prefill"
           : path == kernels::MoeGemmPath::Grouped ? "moe.prefill.grouped" : "moe.prefill.lt";
    r.batch = n;
    r.T = n;
    r.flops = double(n * k) * 3.0 * double(H) * double(I) * 2.0;
    r.bytes = double(used) * 3.0 * double(H) * double(I) * 2.0 + double(n * H) * 8.0;
    time_fn([&] { runner.run(p, nullptr); }, r);
    r.shape = "n=" + std::to_string(n) + " H=" + std::to_string(H) + " I=" + std::to_string(I) + " E=256 k=8 " +
              d.name + " seed=" + std::to_string(seed) + " rows/expert " + std::to_string(*cmin) + ".." +
              std::to_string(*cmax) + " " + name(path == kernels::MoeGemmPath::Auto ? chosen : other) +
              pct_of(r.tflops, ceiling);
    rows.push_back(r);
  }
  if (H * I >= (int64_t(1) << 23)) {  // the per-expert path over 8 side streams instead of 4
    kernels::MoePrefill runner8(8);
    p.path = kernels::MoeGemmPath::PerExpert;
    CudaBenchRow r;
    r.op = "moe.prefill.lt8";
    r.batch = n;
    r.T = n;
    r.flops = double(n * k) * 3.0 * double(H) * double(I) * 2.0;
    r.bytes = double(used) * 3.0 * double(H) * double(I) * 2.0 + double(n * H) * 8.0;
    time_fn([&] { runner8.run(p, nullptr); }, r);
    r.shape = "n=" + std::to_string(n) + " H=" + std::to_string(H) + " I=" + std::to_string(I) + " E=256 k=8 " +
              d.name + " seed=" + std::to_string(seed) + " rows/expert " + std::to_string(*cmin) + ".." +
              std::to_string(*cmax) + " per-expert, 8 lanes" + pct_of(r.tflops, ceiling);
    rows.push_back(r);
  }
}

}  // namespace

std::vector<CudaBenchRow> moe_prefill_bench_rows(const CudaBenchOptions& o, const CudaTimeFn& time_fn,
                                                 const std::vector<CudaBenchRow>& so_far) {
  std::vector<CudaBenchRow> rows;
  double ceiling = 0;
  for (const auto& r : so_far)
    if (r.op == "gemm.ceiling") ceiling = r.tflops;
  if (ceiling == 0) {
    rows.push_back(gemm_row(8192, 8192, 8192, "gemm.ceiling", o, time_fn));
    ceiling = rows.back().tflops;
  }
  struct Shape { int64_t N, K; const char* what; };
  for (const Shape& s : {Shape{3 * 8192, 8192, "Lightning qkv"}, Shape{8192, 8192, "dense/gate"},
                         Shape{4096, 8192, "shared gate_up"}, Shape{8192, 2048, "shared down"}}) {
    for (const char* op : {"gemm.bf16", "gemm.bf16.f32out", "gemm.bf16.f32out.tuned"}) {
      CudaBenchRow r = gemm_row(4096, s.N, s.K, op, o, time_fn);
      r.shape += std::string(", ") + s.what + pct_of(r.tflops, ceiling);
      rows.push_back(r);
    }
  }
  for (const MoeDims& d : {MoeDims{"Ring-mini", 2048, 512}, MoeDims{"Ling-2.5", 8192, 2048}})
    moe_rows(d, 4096, ceiling, o, time_fn, rows);
  return rows;
}

}  // namespace ling
