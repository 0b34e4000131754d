// GPU kernel benchmarks (bench_cuda.h): copy-bandwidth ceiling and the ling kernels in one process, so every
// figure is a ratio taken in the same run (performance.md §6). Host code only: launches go through the
// ling_kernels launchers; random data comes from the device fill kernels (never zeros).
#include "ling/engine/bench_cuda.h"
#include "ling/engine/cuda_switches.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <memory>
#include <numeric>
#include <random>

#include "ling/core/error.h"
#include "ling/kernels/fill.h"
#include "ling/kernels/gemv.h"
#include "ling/kernels/lightning.h"
#include "ling/kernels/mla_decode.h"
#include "ling/kernels/moe.h"
#include "ling/kernels/sampling.h"
#include "bench_attention.h"
#include "bench_util.h"
#include "bench_moe_prefill.h"

namespace ling {
namespace {

struct Timer {
  cudaEvent_t a = nullptr, b = nullptr;
  Timer() {
    BENCH_CUDA(cudaEventCreate(&a));
    BENCH_CUDA(cudaEventCreate(&b));
  }
  ~Timer() {
    cudaEventDestroy(a);
    cudaEventDestroy(b);
  }
};

constexpr size_t kFlushBytes = size_t(256) << 20;  // > 50 MB L2 of the H100 and 60 MB of the H200

// Median/min/max of `reps` calls of fn, each after an L2 flush, after `warmup` untimed calls.
void time_calls(const std::function<void()>& fn, const CudaBenchOptions& o, DevBuf& flush, CudaBenchRow& row) {
  Timer t;
  for (int i = 0; i < o.warmup; ++i) fn();
  BENCH_CUDA(cudaDeviceSynchronize());
  row.samples_ms.clear();
  for (int i = 0; i < std::max(1, o.reps); ++i) {
    BENCH_CUDA(cudaMemsetAsync(flush.p, i & 0xff, kFlushBytes, nullptr));
    BENCH_CUDA(cudaEventRecord(t.a, nullptr));
    fn();
    BENCH_CUDA(cudaEventRecord(t.b, nullptr));
    BENCH_CUDA(cudaEventSynchronize(t.b));
    float ms = 0;
    BENCH_CUDA(cudaEventElapsedTime(&ms, t.a, t.b));
    row.samples_ms.push_back(ms);
  }
  std::vector<double> s = row.samples_ms;
  std::sort(s.begin(), s.end());
  row.ms = s.size() % 2 ? s[s.size() / 2] : 0.5 * (s[s.size() / 2 - 1] + s[s.size() / 2]);
  row.ms_min = s.front();
  row.ms_max = s.back();
  row.gbps = row.bytes / (row.ms * 1e6);
  row.tflops = row.flops / (row.ms * 1e9);
}

std::vector<float> log_decays(int64_t nh) {  // Ling slopes at layer-decay factor 1 (§2.6 step 5)
  std::vector<float> g(static_cast<size_t>(nh));
  for (int64_t h = 0; h < nh; ++h) g[size_t(h)] = -float(std::pow(2.0, -8.0 * double(h + 1) / double(nh)));
  return g;
}

CudaBenchRow copy_ceiling(const CudaBenchOptions& o, DevBuf& flush) {
  const size_t bytes = size_t(1) << 30;  // 1 GiB copied = 2 GiB of traffic
  DevBuf src(bytes), dst(bytes);
  kernels::launch_fill_uniform_f32(src.as<float>(), int64_t(bytes / 4), -1.f, 1.f, o.seed, nullptr);
  CudaBenchRow r;
  r.op = "copy.d2d";
  r.shape = "1 GiB cudaMemcpy device-to-device";
  r.bytes = 2.0 * double(bytes);
  time_calls([&] { BENCH_CUDA(cudaMemcpyAsync(dst.p, src.p, bytes, cudaMemcpyDeviceToDevice, nullptr)); }, o, flush, r);
  return r;
}

// exact: fp32-accurate outputs and state (hi + lo operands); otherwise bf16 MMA operands (op lightning.prefill.bf16ops).
CudaBenchRow lightning_prefill(int64_t T, int64_t nh, int64_t blocks, bool exact, int sms, const CudaBenchOptions& o,
                               DevBuf& flush) {
  const int64_t d = kernels::kLightningHeadDim, n = T * nh * d;
  DevBuf q(size_t(n) * 2), k(size_t(n) * 2), v(size_t(n) * 2), out(size_t(n) * 2), state(size_t(nh * d * d) * 4),
      g(size_t(nh) * 4), ws(kernels::lightning_prefill_workspace_bytes(T, nh, blocks, sms));
  kernels::launch_fill_uniform_bf16(q.as<uint16_t>(), n, -1.f, 1.f, o.seed + 1, nullptr);
  kernels::launch_fill_uniform_bf16(k.as<uint16_t>(), n, -1.f, 1.f, o.seed + 2, nullptr);
  kernels::launch_fill_uniform_bf16(v.as<uint16_t>(), n, -1.f, 1.f, o.seed + 3, nullptr);
  const std::vector<float> gh = log_decays(nh);
  BENCH_CUDA(cudaMemcpy(g.p, gh.data(), gh.size() * 4, cudaMemcpyHostToDevice));
  kernels::LightningPrefillParams p;
  p.q = q.as<uint16_t>(), p.k = k.as<uint16_t>(), p.v = v.as<uint16_t>(), p.o = out.p;
  p.state = state.as<float>(), p.g = g.as<float>(), p.workspace = ws.p;
  p.T = T, p.nh = nh, p.scale = 1.0f / std::sqrt(float(d)), p.blocks = blocks;
  p.exact = exact;
  CudaBenchRow r;
  r.op = exact ? "lightning.prefill" : "lightning.prefill.bf16ops";
  r.T = T, r.nh = nh, r.batch = 1, r.blocks = blocks;
  r.shape = "T=" + std::to_string(T) + " nh=" + std::to_string(nh) + " d=128 bf16, blocks=" +
            std::to_string(kernels::lightning_prefill_blocks(T, nh, blocks, sms));
  r.bytes = double(n) * 2 * 4;
  r.flops = double(nh) * double(T) * (4.0 * 64 * 128 + 4.0 * 128 * 128);
  // The state starts random; each call continues from the previous call's final state (decay keeps it bounded).
  kernels::launch_fill_uniform_f32(p.state, nh * d * d, -0.5f, 0.5f, o.seed + 4, nullptr);
  time_calls([&] { kernels::launch_lightning_prefill(p, nullptr); }, o, flush, r);
  return r;
}

CudaBenchRow lightning_decode(int64_t B, int64_t nh, const CudaBenchOptions& o, DevBuf& flush) {
  const int64_t d = kernels::kLightningHeadDim, n = B * nh * d, ns = B * nh * d * d;
  DevBuf q(size_t(n) * 4), k(size_t(n) * 4), v(size_t(n) * 4), out(size_t(n) * 4), state(size_t(ns) * 4),
      g(size_t(nh) * 4);
  kernels::launch_fill_uniform_f32(q.as<float>(), n, -1.f, 1.f, o.seed + 5, nullptr);
  kernels::launch_fill_uniform_f32(k.as<float>(), n, -1.f, 1.f, o.seed + 6, nullptr);
  kernels::launch_fill_uniform_f32(v.as<float>(), n, -1.f, 1.f, o.seed + 7, nullptr);
  kernels::launch_fill_uniform_f32(state.as<float>(), ns, -0.5f, 0.5f, o.seed + 8, nullptr);
  const std::vector<float> gh = log_decays(nh);
  BENCH_CUDA(cudaMemcpy(g.p, gh.data(), gh.size() * 4, cudaMemcpyHostToDevice));
  kernels::LightningDecodeParams p;
  p.q = q.as<float>(), p.k = k.as<float>(), p.v = v.as<float>(), p.o = out.as<float>();
  p.state = state.as<float>(), p.g = g.as<float>();
  p.B = B, p.nh = nh, p.scale = 1.0f / std::sqrt(float(d));
  CudaBenchRow r;
  r.op = "lightning.decode";
  r.nh = nh, r.batch = B, r.T = 1;
  r.shape = "B=" + std::to_string(B) + " nh=" + std::to_string(nh) + " d=128, fp32 state";
  r.bytes = 2.0 * double(ns) * 4;
  r.flops = 4.0 * double(ns);
  time_calls([&] { kernels::launch_lightning_decode(p, nullptr); }, o, flush, r);
  return r;
}

// Tensor-core MLA decode kernels above 16 heads: the default (wgmma), the mma.sync one, wgmma with bf16 weights.
enum class MlaKernel { Default, MmaSync, Bf16Weights, PingPong, Tma };

// tensor_cores: bf16 query on tensor cores (op "mla.decode": the wgmma kernel above 16 heads, mma.sync at ≤ 16;
// "mla.decode.mma_sync", "mla.decode.bf16w", "mla.decode.pingpong" and "mla.decode.tma" for the other kernels); otherwise fp32 query on CUDA cores
// ("mla.decode.fp32").
CudaBenchRow mla_decode(const CudaBenchOptions::MlaShape& m, bool tensor_cores, int sms, const CudaBenchOptions& o,
                        DevBuf& flush, MlaKernel kernel = MlaKernel::Default) {
  const int64_t B = m.batch, S = m.context, nh = m.heads, row = kernels::kMlaRow, page = kernels::kMlaPage;
  const int64_t pages_per_seq = (S + page - 1) / page, pages = B * pages_per_seq;
  std::vector<int32_t> table(static_cast<size_t>(pages)), lens(static_cast<size_t>(B), int32_t(S));
  std::iota(table.begin(), table.end(), 0);
  std::shuffle(table.begin(), table.end(), std::mt19937_64(o.seed));  // scattered pages, as after a while of serving
  DevBuf q(size_t(B * nh * row) * 4), qb(size_t(B * nh * row) * 2), cache(size_t(pages * page * row) * 2), tab(table.size() * 4), len(lens.size() * 4),
      u(size_t(B * nh * kernels::kMlaLatent) * 4), ws(kernels::mla_decode_workspace_bytes(B, nh, S, 0, sms, tensor_cores));
  kernels::launch_fill_uniform_f32(q.as<float>(), B * nh * row, -1.f, 1.f, o.seed + 9, nullptr);
  kernels::launch_fill_uniform_bf16(qb.as<uint16_t>(), B * nh * row, -1.f, 1.f, o.seed + 9, nullptr);
  kernels::launch_fill_uniform_bf16(cache.as<uint16_t>(), pages * page * row, -1.f, 1.f, o.seed + 10, nullptr);
  BENCH_CUDA(cudaMemcpy(tab.p, table.data(), table.size() * 4, cudaMemcpyHostToDevice));
  BENCH_CUDA(cudaMemcpy(len.p, lens.data(), lens.size() * 4, cudaMemcpyHostToDevice));
  kernels::MlaDecodeParams p;
  p.q = tensor_cores ? nullptr : q.as<float>(), p.q_bf16 = tensor_cores ? qb.as<uint16_t>() : nullptr;
  p.cache = cache.as<uint16_t>(), p.page_table = tab.as<int32_t>(), p.seq_len = len.as<int32_t>();
  p.u = u.as<float>(), p.workspace = ws.p;
  p.B = B, p.nh = nh, p.max_pages = pages_per_seq, p.max_seq_len = S, p.scale = float(1.0 / std::sqrt(192.0));
  p.wgmma = kernel != MlaKernel::MmaSync;
  p.bf16_softmax_weights = kernel == MlaKernel::Bf16Weights || kernel == MlaKernel::PingPong || kernel == MlaKernel::Tma;
  p.pingpong = kernel == MlaKernel::PingPong;
  p.tma = kernel == MlaKernel::Tma, p.num_pages = pages;
  CudaBenchRow r;
  r.op = !tensor_cores                      ? "mla.decode.fp32"
         : kernel == MlaKernel::MmaSync     ? "mla.decode.mma_sync"
         : kernel == MlaKernel::Bf16Weights ? "mla.decode.bf16w"
         : kernel == MlaKernel::PingPong    ? "mla.decode.pingpong"
         : kernel == MlaKernel::Tma         ? "mla.decode.tma"
                                            : "mla.decode";
  r.T = S, r.nh = nh, r.batch = B;
  r.shape = "B=" + std::to_string(B) + " ctx=" + std::to_string(S) + " nh=" + std::to_string(nh) +
            " paged, splits=" + std::to_string(kernels::mla_decode_splits(B, nh, S, 0, sms, tensor_cores));
  r.bytes = double(B) * double(S) * double(row) * 2;
  r.flops = 2.0 * double(B) * double(nh) * double(S) * double(row + kernels::kMlaLatent);
  time_calls([&] { kernels::launch_mla_decode(p, nullptr); }, o, flush, r);
  return r;
}

// Decode GEMV y[M, N] = x[M, K]·Wᵀ, bf16 weights (f32: the router's fp32 weights).
// fma: the CUDA-core path for M ≥ 2 (GemvParams::tensor_cores = false), to compare with the tensor-core tiles.
CudaBenchRow gemv_row(int64_t M, int64_t N, int64_t K, bool f32, const CudaBenchOptions& o, DevBuf& flush,
                      bool fma = false) {
  DevBuf x(size_t(M * K) * 4), w(size_t(N * K) * (f32 ? 4 : 2)), y(size_t(M * N) * 4);
  kernels::launch_fill_uniform_f32(x.as<float>(), M * K, -1.f, 1.f, o.seed + 11, nullptr);
  if (f32) kernels::launch_fill_uniform_f32(w.as<float>(), N * K, -1.f, 1.f, o.seed + 12, nullptr);
  else kernels::launch_fill_uniform_bf16(w.as<uint16_t>(), N * K, -1.f, 1.f, o.seed + 12, nullptr);
  kernels::GemvParams p;
  p.x = x.as<float>(), p.y = y.as<float>(), p.M = M, p.N = N, p.K = K;
  if (f32) p.w_f32 = w.as<float>();
  else p.w = w.as<uint16_t>();
  CudaBenchRow r;
  p.tensor_cores = !fma;
  r.op = f32 ? "gemv.f32" : fma ? "gemv.bf16.fma" : "gemv.bf16";
  r.batch = M;
  r.shape = "M=" + std::to_string(M) + " N=" + std::to_string(N) + " K=" + std::to_string(K);
  r.bytes = double(N) * double(K) * (f32 ? 4 : 2) + double(M) * double(K + N) * 4;
  r.flops = 2.0 * double(M) * double(N) * double(K);
  time_calls([&] { kernels::launch_gemv(p, nullptr); }, o, flush, r);
  return r;
}

// MoE router at Ling-2.5-1T settings (E 256, k 8, 8 groups, 4 kept) for n tokens.
CudaBenchRow moe_route_row(int64_t n, const CudaBenchOptions& o, DevBuf& flush) {
  const int64_t E = 256, k = 8;
  DevBuf logits(size_t(n * E) * 4), bias(size_t(E) * 4), ids(size_t(n * k) * 4), wts(size_t(n * k) * 4);
  kernels::launch_fill_uniform_f32(logits.as<float>(), n * E, -4.f, 4.f, o.seed + 13, nullptr);
  kernels::launch_fill_uniform_f32(bias.as<float>(), E, -0.5f, 0.5f, o.seed + 14, nullptr);
  kernels::MoeRouteDevParams p;
  p.logits = logits.as<float>(), p.bias = bias.as<float>(), p.topk_ids = ids.as<int32_t>();
  p.topk_weights = wts.as<float>(), p.n = n, p.E = E, p.k = k, p.n_group = 8, p.topk_group = 4;
  p.routed_scaling_factor = 2.5f;
  CudaBenchRow r;
  r.op = "moe.route";
  r.batch = n;
  r.shape = "n=" + std::to_string(n) + " E=256 k=8 groups 8/4";
  r.bytes = double(n * E + E) * 4 + double(n * k) * 8;
  time_calls([&] { kernels::launch_moe_route(p, nullptr); }, o, flush, r);
  return r;
}

// Routed experts for n tokens, k = 8 distinct experts each out of 16 allocated. Per slot (each slot streams its
// expert): gate_up + SwiGLU, down + combine, and both in sequence as moe.experts; grouped by expert through the
// device plan (each expert read once for all its tokens): both in sequence as moe.experts.grouped. Bytes: the
// weights of the distinct experts touched (what a step must read), over the time of the kernels.
std::vector<CudaBenchRow> moe_expert_rows(int64_t H, int64_t I, int64_t n, const CudaBenchOptions& o, DevBuf& flush) {
  const int64_t E = 16, k = 8, S = n * k;
  DevBuf gu(size_t(E * 2 * I * H) * 2), dn(size_t(E * H * I) * 2), tgu(size_t(E) * 8), tdn(size_t(E) * 8);
  DevBuf x(size_t(n * H) * 4), act(size_t(S * I) * 4), out(size_t(n * H) * 4), ids(size_t(S) * 4), wts(size_t(S) * 4);
  DevBuf plan(kernels::moe_plan_bytes(n, k));
  kernels::launch_fill_uniform_bf16(gu.as<uint16_t>(), E * 2 * I * H, -0.1f, 0.1f, o.seed + 15, nullptr);
  kernels::launch_fill_uniform_bf16(dn.as<uint16_t>(), E * H * I, -0.1f, 0.1f, o.seed + 16, nullptr);
  kernels::launch_fill_uniform_f32(x.as<float>(), n * H, -1.f, 1.f, o.seed + 17, nullptr);
  kernels::launch_fill_uniform_f32(wts.as<float>(), S, 0.f, 1.f, o.seed + 18, nullptr);
  std::vector<const uint16_t*> pg(static_cast<size_t>(E)), pd(static_cast<size_t>(E));
  for (int64_t e = 0; e < E; ++e) {
    pg[size_t(e)] = gu.as<uint16_t>() + e * 2 * I * H;
    pd[size_t(e)] = dn.as<uint16_t>() + e * H * I;
  }
  std::vector<int32_t> hid(static_cast<size_t>(S));
  std::vector<bool> touched(static_cast<size_t>(E), false);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t j = 0; j < k; ++j) {  // 8 distinct, scattered experts per token, shifted from token to token
      hid[size_t(t * k + j)] = int32_t((2 * j + 1 + 3 * t) % E);
      touched[size_t(hid[size_t(t * k + j)])] = true;
    }
  const double distinct = double(std::count(touched.begin(), touched.end(), true));
  BENCH_CUDA(cudaMemcpy(tgu.p, pg.data(), pg.size() * 8, cudaMemcpyHostToDevice));
  BENCH_CUDA(cudaMemcpy(tdn.p, pd.data(), pd.size() * 8, cudaMemcpyHostToDevice));
  BENCH_CUDA(cudaMemcpy(ids.p, hid.data(), hid.size() * 4, cudaMemcpyHostToDevice));
  kernels::MoeGateUpParams g;
  g.x = x.as<float>(), g.ids = ids.as<int32_t>(), g.gate_up = tgu.as<const uint16_t*>(), g.act = act.as<float>();
  g.n = n, g.k = k, g.H = H, g.I = I;
  kernels::MoeDownParams d;
  d.act = act.as<float>(), d.ids = ids.as<int32_t>(), d.weights = wts.as<float>(), d.down = tdn.as<const uint16_t*>();
  d.out = out.as<float>(), d.n = n, d.k = k, d.H = H, d.I = I;
  DevBuf dws(kernels::moe_down_workspace_bytes(n, k, H));
  d.workspace = dws.as<float>();
  const std::string shape = "n=" + std::to_string(n) + " k=8 of 16 H=" + std::to_string(H) + " I=" + std::to_string(I);
  std::vector<CudaBenchRow> rows(n == 1 ? 4 : 2);
  CudaBenchRow& both = rows[rows.size() - 2];
  CudaBenchRow& grouped = rows.back();
  both.op = "moe.experts", grouped.op = "moe.experts.grouped";
  both.bytes = grouped.bytes = distinct * double(3 * I * H) * 2;
  if (n == 1) {
    rows[0].op = "moe.gate_up_swiglu", rows[0].bytes = distinct * double(2 * I * H) * 2;
    rows[1].op = "moe.down_combine", rows[1].bytes = distinct * double(H * I) * 2;
  }
  for (auto& r : rows) r.shape = shape, r.batch = n, r.flops = r.bytes * double(n * k) / distinct;
  if (n == 1) {
    time_calls([&] { kernels::launch_moe_gate_up_swiglu(g, nullptr); }, o, flush, rows[0]);
    time_calls([&] { kernels::launch_moe_down_combine(d, nullptr); }, o, flush, rows[1]);
  }
  time_calls([&] {
    kernels::launch_moe_gate_up_swiglu(g, nullptr);
    kernels::launch_moe_down_combine(d, nullptr);
  }, o, flush, both);
  g.plan = plan.as<int32_t>(), d.plan = plan.as<int32_t>();
  time_calls([&] {
    kernels::launch_moe_gate_up_swiglu(g, nullptr);
    kernels::launch_moe_down_combine(d, nullptr);
  }, o, flush, grouped);
  return rows;
}

// One decode token's MoE layer at Ring-mini / Ling-2.5 routing settings (E 256, k 8 + the shared expert as slot
// k, 8 groups with 4 kept), the 257 table entries over a pool of 64 distinct experts (entry e → e % 64): the router
// and the experts as three launches (moe.layer: launch_moe_router, gate_up + SwiGLU, down + combine) and in one
// (moe.layer.fused: launch_moe_fused), then the fused kernel's phases from one more call with its stamps (median
// over the CTAs as ms, the fastest and slowest CTA as min..max). Bytes: the router weights and the distinct pool
// experts the routing touched.
std::vector<CudaBenchRow> moe_layer_rows(int64_t H, int64_t I, int sms, const CudaBenchOptions& o, DevBuf& flush) {
  const int64_t E = 256, k = 8, slots = k + 1, pool = 64;
  if (!kernels::moe_fused_supported(H, I, E, k, 8, 4, true, sms)) return {};
  DevBuf gu(size_t(pool * 2 * I * H) * 2), dn(size_t(pool * H * I) * 2), tab(size_t(2 * (E + 1)) * 8);
  DevBuf rw(size_t(E * H) * 4), bias(size_t(E) * 4), x(size_t(H) * 4), logits(size_t(E) * 4);
  DevBuf ids(size_t(slots) * 4), wts(size_t(slots) * 4), act(size_t(slots * I) * 4), out(size_t(H) * 4);
  DevBuf counter(4), sync(8), stamps(size_t(sms) * kernels::kMoeFusedStamps * 8);
  DevBuf dws(kernels::moe_down_workspace_bytes(1, slots, H));
  kernels::launch_fill_uniform_bf16(gu.as<uint16_t>(), pool * 2 * I * H, -0.1f, 0.1f, o.seed + 31, nullptr);
  kernels::launch_fill_uniform_bf16(dn.as<uint16_t>(), pool * H * I, -0.1f, 0.1f, o.seed + 32, nullptr);
  kernels::launch_fill_uniform_f32(rw.as<float>(), E * H, -0.05f, 0.05f, o.seed + 33, nullptr);
  kernels::launch_fill_uniform_f32(bias.as<float>(), E, -0.5f, 0.5f, o.seed + 34, nullptr);
  kernels::launch_fill_uniform_f32(x.as<float>(), H, -1.f, 1.f, o.seed + 35, nullptr);
  std::vector<const uint16_t*> t(size_t(2 * (E + 1)));
  for (int64_t e = 0; e <= E; ++e) {
    t[size_t(e)] = gu.as<uint16_t>() + (e % pool) * 2 * I * H;
    t[size_t(E + 1 + e)] = dn.as<uint16_t>() + (e % pool) * H * I;
  }
  BENCH_CUDA(cudaMemcpy(tab.p, t.data(), t.size() * 8, cudaMemcpyHostToDevice));
  BENCH_CUDA(cudaMemset(counter.p, 0, 4));
  BENCH_CUDA(cudaMemset(sync.p, 0, 8));
  kernels::MoeRouterParams r;
  r.route.logits = logits.as<float>(), r.route.bias = bias.as<float>(), r.route.topk_ids = ids.as<int32_t>();
  r.route.topk_weights = wts.as<float>(), r.route.n = 1, r.route.E = E, r.route.k = k, r.route.n_group = 8;
  r.route.topk_group = 4, r.route.routed_scaling_factor = 2.5f, r.route.shared_slot = true;
  r.x = x.as<float>(), r.H = H, r.w = rw.as<float>(), r.logits = logits.as<float>(), r.counter = counter.as<unsigned>();
  const auto* gtab = tab.as<const uint16_t*>();
  kernels::MoeGateUpParams g;
  g.x = x.as<float>(), g.ids = ids.as<int32_t>(), g.gate_up = gtab, g.act = act.as<float>(), g.n = 1, g.k = slots;
  g.H = H, g.I = I;
  kernels::MoeDownParams d;
  d.act = act.as<float>(), d.ids = ids.as<int32_t>(), d.weights = wts.as<float>(), d.down = gtab + E + 1;
  d.out = out.as<float>(), d.n = 1, d.k = slots, d.H = H, d.I = I, d.workspace = dws.as<float>();
  kernels::MoeFusedParams f;
  f.router = r, f.gate_up = gtab, f.down = gtab + E + 1, f.act = act.as<float>(), f.out = out.as<float>(), f.I = I;
  f.sync = sync.as<unsigned>();
  kernels::launch_moe_fused(f, nullptr);
  std::vector<int32_t> hid(static_cast<size_t>(slots));
  BENCH_CUDA(cudaMemcpy(hid.data(), ids.p, hid.size() * 4, cudaMemcpyDeviceToHost));
  std::vector<bool> touched(static_cast<size_t>(pool), false);
  for (int32_t e : hid) touched[size_t(e % pool)] = true;
  const double distinct = double(std::count(touched.begin(), touched.end(), true));
  const std::string shape = "n=1 E=256 k=8+1 H=" + std::to_string(H) + " I=" + std::to_string(I);
  std::vector<CudaBenchRow> rows(2);
  rows[0].op = "moe.layer", rows[1].op = "moe.layer.fused";
  for (auto& row : rows) {
    row.shape = shape, row.batch = 1;
    row.bytes = double(E * H) * 4 + distinct * double(3 * I * H) * 2;
    row.flops = 2.0 * double(E * H) + 6.0 * double(slots * I * H);
  }
  time_calls([&] {
    kernels::launch_moe_router(r, nullptr);
    kernels::launch_moe_gate_up_swiglu(g, nullptr);
    kernels::launch_moe_down_combine(d, nullptr);
  }, o, flush, rows[0]);
  time_calls([&] { kernels::launch_moe_fused(f, nullptr); }, o, flush, rows[1]);
  // Phases of one more cold call.
  f.stamps = stamps.as<unsigned long long>();
  BENCH_CUDA(cudaMemsetAsync(flush.p, 1, kFlushBytes, nullptr));
  kernels::launch_moe_fused(f, nullptr);
  BENCH_CUDA(cudaDeviceSynchronize());
  std::vector<unsigned long long> st(size_t(sms) * kernels::kMoeFusedStamps);
  BENCH_CUDA(cudaMemcpy(st.data(), stamps.p, st.size() * 8, cudaMemcpyDeviceToHost));
  const char* names[kernels::kMoeFusedStamps - 1] = {"wait", "router", "barrier1", "route", "gate_up", "barrier2", "down"};
  for (int i = 0; i + 1 < kernels::kMoeFusedStamps; ++i) {
    std::vector<double> dt;
    for (int c = 0; c < sms; ++c) {
      const unsigned long long* sc = st.data() + size_t(c) * kernels::kMoeFusedStamps;
      dt.push_back(double(sc[i + 1] - sc[i]) * 1e-6);
    }
    std::sort(dt.begin(), dt.end());
    CudaBenchRow ph;
    ph.op = std::string("moe.layer.fused.") + names[i];
    ph.shape = shape + " (CTA median, min..max)";
    ph.batch = 1, ph.ms = dt[dt.size() / 2], ph.ms_min = dt.front(), ph.ms_max = dt.back();
    rows.push_back(ph);
  }
  return rows;
}

// Greedy sampling over an lm_head's logits.
CudaBenchRow argmax_row(int64_t n, int64_t V, const CudaBenchOptions& o, DevBuf& flush) {
  DevBuf x(size_t(n * V) * 4), ids(size_t(n) * 4);
  kernels::launch_fill_uniform_f32(x.as<float>(), n * V, -8.f, 8.f, o.seed + 19, nullptr);
  kernels::ArgmaxRowsParams p;
  p.logits = x.as<float>(), p.ids = ids.as<int32_t>(), p.n = n, p.V = V;
  CudaBenchRow r;
  r.op = "argmax.rows";
  r.batch = n;
  r.shape = "n=" + std::to_string(n) + " V=" + std::to_string(V);
  r.bytes = double(n) * double(V) * 4;
  time_calls([&] { kernels::launch_argmax_rows(p, nullptr); }, o, flush, r);
  return r;
}

// Seeded sampling over an lm_head's logits (temperature 0.8, top_p 0.9: sort, softmax, cut, draw) per row.
CudaBenchRow sample_row(int64_t n, int64_t V, const CudaBenchOptions& o, DevBuf& flush) {
  DevBuf x(size_t(n * V) * 4), ids(size_t(n) * 4), ws(kernels::sample_rows_workspace_bytes(n, V));
  kernels::launch_fill_uniform_f32(x.as<float>(), n * V, -8.f, 8.f, o.seed + 20, nullptr);
  std::vector<kernels::SampleSpec> specs(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) specs[size_t(i)] = {0.8f, 0, 0.9f, 0x9E3779B97F4A7C15ull * uint64_t(i + 1)};
  kernels::SampleRowsParams p;
  p.logits = x.as<float>(), p.specs = specs.data(), p.ids = ids.as<int32_t>(), p.n = n, p.V = V;
  p.workspace = ws.as<void>();
  CudaBenchRow r;
  r.op = "sample.rows";
  r.batch = n;
  r.shape = "n=" + std::to_string(n) + " V=" + std::to_string(V) + " T=0.8 top_p=0.9";
  r.bytes = double(n) * double(V) * 4;
  time_calls([&] { kernels::launch_sample_rows(p, nullptr); }, o, flush, r);
  return r;
}

}  // namespace

CudaBenchReport run_cuda_bench(const CudaBenchOptions& o) {
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess || count == 0)
    LING_THROW("ling bench --backend cuda: no CUDA device is present");
  CudaBenchReport rep;
  cudaDeviceProp prop{};
  BENCH_CUDA(cudaGetDeviceProperties(&prop, 0));
  rep.sms = prop.multiProcessorCount;
  rep.device = std::string(prop.name) + ", " + std::to_string(prop.multiProcessorCount) + " SMs, " +
               std::to_string(prop.totalGlobalMem >> 30) + " GiB, cc " + std::to_string(prop.major) + "." +
               std::to_string(prop.minor);
  BENCH_CUDA(cudaDriverGetVersion(&rep.driver_version));
  BENCH_CUDA(cudaRuntimeGetVersion(&rep.runtime_version));
  rep.switches = cuda_switches_changed(cuda_switches_from_env());
  DevBuf flush(kFlushBytes);

  CudaBenchRow copy = copy_ceiling(o, flush);
  rep.copy_gbps = copy.gbps;
  rep.rows.push_back(copy);
  if (!o.model.empty()) {
    for (auto& r : run_e2e_bench(o, rep.copy_gbps)) rep.rows.push_back(r);
    for (auto& r : rep.rows)  // the load's GB/s are host to device: no share of the device copy
      r.ceiling_pct = rep.copy_gbps > 0 && r.op != "engine.load" ? 100.0 * r.gbps / rep.copy_gbps : 0.0;
    return rep;
  }
  for (int64_t nh : o.prefill_heads)
    for (int64_t T : o.prefill_tokens)
      for (int64_t blocks : o.prefill_blocks)
        for (bool exact : {true, false}) rep.rows.push_back(lightning_prefill(T, nh, blocks, exact, rep.sms, o, flush));
  for (int64_t B : o.decode_batch) rep.rows.push_back(lightning_decode(B, o.decode_heads, o, flush));
  for (const auto& m : o.mla) rep.rows.push_back(mla_decode(m, true, rep.sms, o, flush));
  for (const auto& m : o.mla)
    if (m.heads > 16)
      for (MlaKernel k : {MlaKernel::MmaSync, MlaKernel::Bf16Weights, MlaKernel::PingPong, MlaKernel::Tma})
        rep.rows.push_back(mla_decode(m, true, rep.sms, o, flush, k));
  for (const auto& m : o.mla) rep.rows.push_back(mla_decode(m, false, rep.sms, o, flush));
  for (const auto& g : o.gemv)
    for (int64_t M : o.gemv_batch) {
      rep.rows.push_back(gemv_row(M, g.N, g.K, false, o, flush));
      if (M >= 2 && g.N > kernels::kGemvBlockRowMaxN) rep.rows.push_back(gemv_row(M, g.N, g.K, false, o, flush, true));
    }
  for (const auto& g : o.gemv_router) rep.rows.push_back(gemv_row(1, g.N, g.K, true, o, flush));
  for (int64_t n : {1, 64}) rep.rows.push_back(moe_route_row(n, o, flush));
  for (const auto& m : o.moe)
    for (int64_t n : {1, 8})
      for (auto& r : moe_expert_rows(m.H, m.I, n, o, flush)) rep.rows.push_back(r);
  for (const auto& m : o.moe)
    for (auto& r : moe_layer_rows(m.H, m.I, rep.sms, o, flush)) rep.rows.push_back(r);
  for (int64_t n : {1, 8}) rep.rows.push_back(argmax_row(n, 157184, o, flush));
  for (int64_t n : {1, 8}) rep.rows.push_back(sample_row(n, 157184, o, flush));
  const CudaTimeFn timed = [&](const std::function<void()>& fn, CudaBenchRow& row) { time_calls(fn, o, flush, row); };
  for (auto& r : attention_bench_rows(o, timed)) rep.rows.push_back(r);  // gemm.ceiling + attention.prefill
  for (auto& r : moe_prefill_bench_rows(o, timed, rep.rows)) rep.rows.push_back(r);  // gemm.bf16 + moe.prefill
  for (auto& r : rep.rows) r.ceiling_pct = rep.copy_gbps > 0 ? 100.0 * r.gbps / rep.copy_gbps : 0.0;
  return rep;
}

}  // namespace ling
