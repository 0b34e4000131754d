// Flash-attention prefill bench rows and the GEMM ceiling they are judged against (bench_attention.h,
// performance.md §6). Host code only: launches go through ling_kernels; random data from the device fills.
#include "bench_attention.h"

#include <cuda_runtime_api.h>

#include <cmath>
#include <cstdio>
#include <memory>
#include <string>

#include "ling/core/error.h"
#include "ling/kernels/attention.h"
#include "ling/kernels/fill.h"
#include "ling/kernels/gemm_lt.h"
#include "bench_util.h"

namespace ling {
namespace {

CudaBenchRow gemm_ceiling(const CudaBenchOptions& o, const CudaTimeFn& time_fn) {
  const int64_t n = 8192;
  DevBuf w(size_t(n * n) * 2), x(size_t(n * n) * 2), y(size_t(n * n) * 4);
  kernels::launch_fill_uniform_bf16(w.as<uint16_t>(), n * n, -1.f, 1.f, o.seed + 40, nullptr);
  kernels::launch_fill_uniform_bf16(x.as<uint16_t>(), n * n, -1.f, 1.f, o.seed + 41, nullptr);
  kernels::LtGemm gemm(nullptr);
  CudaBenchRow r;
  r.op = "gemm.ceiling";
  r.batch = 1;
  r.shape = "cuBLASLt bf16 M=N=K=8192, fp32 out";
  r.bytes = double(n * n) * (2 + 2 + 4);
  r.flops = 2.0 * double(n) * double(n) * double(n);
  time_fn([&] { gemm.run(w.p, x.p, y.as<float>(), n, n, n); }, r);
  return r;
}

struct AttnShape {
  int64_t T, S, nh, nkv, dk, dv;
};

// One shape, timed at each CTA layout of the BF16 path (rows per warp / rows per CTA; attention.h names the default).
void attention_rows(const AttnShape& a, double gemm_tflops, const CudaBenchOptions& o, const CudaTimeFn& time_fn,
                    std::vector<CudaBenchRow>& rows) {
  const int64_t pos0 = a.S - a.T;
  DevBuf q(size_t(a.T * a.nh * a.dk) * 2), k(size_t(a.S * a.nkv * a.dk) * 2), v(size_t(a.S * a.nkv * a.dv) * 2),
      out(size_t(a.T * a.nh * a.dv) * 4);
  kernels::launch_fill_uniform_bf16(q.as<uint16_t>(), a.T * a.nh * a.dk, -1.f, 1.f, o.seed + 42, nullptr);
  kernels::launch_fill_uniform_bf16(k.as<uint16_t>(), a.S * a.nkv * a.dk, -1.f, 1.f, o.seed + 43, nullptr);
  kernels::launch_fill_uniform_bf16(v.as<uint16_t>(), a.S * a.nkv * a.dv, -1.f, 1.f, o.seed + 44, nullptr);
  kernels::FlashAttentionParams p;
  p.q = q.p, p.k = k.p, p.v = v.p, p.o = out.as<float>();
  p.T = a.T, p.S = a.S, p.q_pos0 = pos0, p.nh = a.nh, p.nkv = a.nkv, p.dk = a.dk, p.dv = a.dv;
  p.scale = float(1.0 / std::sqrt(double(a.dk)));
  p.dtype = DType::BF16;
  const double pairs = double(a.T) * double(pos0) + double(a.T) * double(a.T + 1) / 2;
  struct Layout {
    int warp_rows, cta_rows;
    const char* name;
  };
  for (const Layout& L : {Layout{32, 128, "32/128"}, Layout{16, 128, "16/128"}, Layout{32, 256, "32/256"}}) {
    p.warp_rows = L.warp_rows, p.cta_rows = L.cta_rows;
    CudaBenchRow r;
    r.op = "attention.prefill";
    r.T = a.T, r.nh = a.nh, r.batch = 1;
    r.flops = 2.0 * double(a.dk + a.dv) * double(a.nh) * pairs;
    r.bytes = double(a.T * a.nh * a.dk) * 2 + double(a.S * a.nkv * (a.dk + a.dv)) * 2 + double(a.T * a.nh * a.dv) * 4;
    time_fn([&] { kernels::launch_flash_attention(p, nullptr); }, r);
    char tail[96];
    std::snprintf(tail, sizeof tail, " bf16 causal, rows/warp/CTA %s, %.1f%% of gemm.ceiling", L.name,
                  gemm_tflops > 0 ? 100.0 * r.tflops / gemm_tflops : 0.0);
    r.shape = "T=" + std::to_string(a.T) + " S=" + std::to_string(a.S) + " pos0=" + std::to_string(pos0) +
              " nh=" + std::to_string(a.nh) + " nkv=" + std::to_string(a.nkv) + " dk=" + std::to_string(a.dk) +
              " dv=" + std::to_string(a.dv) + tail;
    rows.push_back(r);
  }
}

}  // namespace

std::vector<CudaBenchRow> attention_bench_rows(const CudaBenchOptions& o, const CudaTimeFn& time_fn) {
  std::vector<CudaBenchRow> rows{gemm_ceiling(o, time_fn)};
  const double gemm_tflops = rows[0].tflops;
  for (const AttnShape& a : {AttnShape{8192, 8192, 64, 64, 192, 128}, AttnShape{8192, 32768, 64, 64, 192, 128},
                             AttnShape{8192, 131072, 64, 64, 192, 128}, AttnShape{8192, 8192, 64, 8, 128, 128}})
    attention_rows(a, gemm_tflops, o, time_fn, rows);
  return rows;
}

}  // namespace ling
