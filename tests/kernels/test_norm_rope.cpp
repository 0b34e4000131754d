// Norm, RoPE and element-wise kernels (kernels/norm, kernels/rope, kernels/elementwise) against their lib/ref
// twins, both driven by the same core/op_params.h struct (host pointers for the reference, device pointers for
// the kernel): RMSNorm and GroupRMSNorm (strided, in place), the residual add + RMSNorm (vector path and scalar
// fallback, with and without the add), the Lightning output gate, partial RoPE (NeoX and interleaved, YaRN
// attention factor, positions past 128K), per-head QK-norm + RoPE (Lightning and GQA rows, no norm weights,
// interleaved, odd head dims), embedding and SwiGLU. Shapes: the Ling-2.5-1T dims (hidden 8192, 64 heads of
// 128, RoPE 64, latent 512 + 64, expert width 2048) and awkward ones (1 row, primes, dims not a multiple of 4,
// rows wider than the register path). Every element is compared: fp32 rtol 1e-4 (close_f32); the embedding is
// a copy and must be bit-equal.
#include <gtest/gtest.h>

#include <string>

#include "kernel_test_util.h"
#include "ling/kernels/elementwise.h"
#include "ling/kernels/norm.h"
#include "ling/kernels/rope.h"
#include "ling/ref/ops.h"

namespace ling::test {
namespace {

std::string shape(std::initializer_list<int64_t> v) {
  std::string s;
  for (int64_t x : v) {
    if (!s.empty()) s.push_back('x');
    s.append(std::to_string(x));
  }
  return s;
}

std::vector<int64_t> positions(int64_t n, uint64_t seed) {
  std::vector<float> u = uniform(size_t(n), 0.0f, 1.0f, seed);
  std::vector<int64_t> p(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) p[size_t(i)] = i == 0 ? 0 : int64_t(u[size_t(i)] * 300000.0f);  // 0 and past 128K
  return p;
}

TEST(NormKernels, RmsNormMatchesRef) {
  SKIP_WITHOUT_CUDA();
  struct Case { int64_t rows, dim, groups, ldx, ldy; bool in_place; };
  for (const Case& c : {Case{1, 8192, 1, 0, 0, false}, Case{5, 8192, 8, 0, 0, true}, Case{3, 512, 1, 576, 576, true},
                        Case{7, 131, 1, 0, 0, false}, Case{2, 12, 3, 17, 13, false}, Case{4, 1536, 1, 0, 0, false}}) {
    const int64_t ldx = c.ldx ? c.ldx : c.dim, ldy = c.in_place ? ldx : (c.ldy ? c.ldy : c.dim);
    std::vector<float> x = uniform(size_t(c.rows * ldx), -3, 3, uint64_t(c.rows * 7 + c.dim));
    std::vector<float> w = uniform(size_t(c.dim), 0.5f, 1.5f, uint64_t(c.dim + 1));
    std::vector<float> y(size_t(c.rows * ldy), 0.0f);
    if (c.in_place) y = x;
    DeviceBuffer dx(x.size() * 4), dw(w.size() * 4), dy(y.size() * 4);
    dx.upload(x), dw.upload(w), dy.upload(y);
    RmsNormParams p;
    p.rows = c.rows, p.dim = c.dim, p.groups = c.groups, p.ldx = ldx, p.ldy = ldy, p.eps = 1e-6;
    p.x = c.in_place ? dy.as<float>() : dx.as<float>(), p.w = dw.as<float>(), p.y = dy.as<float>();
    kernels::launch_rms_norm(p, nullptr);
    TEST_CUDA(cudaDeviceSynchronize());
    p.x = x.data(), p.w = w.data(), p.y = c.in_place ? x.data() : y.data();
    ref::rms_norm(p);
    EXPECT_TRUE(close_f32("rms_norm " + shape({c.rows, c.dim, c.groups}), dy.download<float>(y.size()),
                          c.in_place ? x : y));
  }
}

TEST(NormKernels, AddRmsNormMatchesRef) {
  SKIP_WITHOUT_CUDA();
  struct Case { int64_t rows, dim; bool add; };
  // 8192 / 2048: the register path; 8190: dim % 4 ≠ 0; 20000: wider than the register path; 1: one value
  for (const Case& c : {Case{1, 8192, true}, Case{4, 2048, true}, Case{3, 8192, false}, Case{3, 8190, true},
                        Case{2, 20000, true}, Case{5, 1, true}}) {
    const size_t n = size_t(c.rows * c.dim);
    std::vector<float> h = uniform(n, -2, 2, uint64_t(11 + c.dim)), d = uniform(n, -1, 1, uint64_t(12 + c.dim));
    std::vector<float> w = uniform(size_t(c.dim), 0.5f, 1.5f, uint64_t(13 + c.dim)), y(n, 0.0f);
    DeviceBuffer dh(n * 4), dd(n * 4), dw(w.size() * 4), dy(n * 4);
    dh.upload(h), dd.upload(d), dw.upload(w);
    AddRmsNormParams p;
    p.rows = c.rows, p.dim = c.dim, p.eps = 1e-6;
    p.h = dh.as<float>(), p.d = c.add ? dd.as<float>() : nullptr, p.w = dw.as<float>(), p.y = dy.as<float>();
    kernels::launch_add_rms_norm(p, nullptr);
    // the late-trigger form on a second copy of h: the same h and y, bit for bit
    DeviceBuffer dh2(n * 4), dy2(n * 4);
    dh2.upload(h);
    AddRmsNormParams q = p;
    q.h = dh2.as<float>(), q.y = dy2.as<float>();
    kernels::launch_add_rms_norm(q, nullptr, true);
    TEST_CUDA(cudaDeviceSynchronize());
    p.h = h.data(), p.d = c.add ? d.data() : nullptr, p.w = w.data(), p.y = y.data();
    ref::add_rms_norm(p);
    const std::string s = shape({c.rows, c.dim}) + (c.add ? " add" : " no add");
    EXPECT_TRUE(close_f32("add_rms_norm h " + s, dh.download<float>(n), h));
    EXPECT_TRUE(close_f32("add_rms_norm y " + s, dy.download<float>(n), y));
    EXPECT_EQ(dh2.download<float>(n), dh.download<float>(n)) << "late trigger, h " << s;
    EXPECT_EQ(dy2.download<float>(n), dy.download<float>(n)) << "late trigger, y " << s;
  }
}

TEST(NormKernels, GroupNormGateMatchesRef) {
  SKIP_WITHOUT_CUDA();
  // ld_gate: the gate inside wider rows (as when it follows q‖k‖v in one GEMV output); 0 = width
  struct Case { int64_t rows, width, groups, ld_gate; };
  for (const Case& c : {Case{1, 8192, 8, 0}, Case{6, 8192, 64, 0}, Case{3, 2048, 4, 0}, Case{2, 35, 5, 0},
                        Case{1, 6, 1, 0}, Case{5, 2048, 4, 4 * 2048}, Case{3, 35, 5, 41}}) {
    const size_t n = size_t(c.rows * c.width), ng = size_t(c.rows * (c.ld_gate ? c.ld_gate : c.width));
    std::vector<float> o = uniform(n, -2, 2, uint64_t(21 + c.width)), g = uniform(ng, -6, 6, uint64_t(22 + c.width));
    std::vector<float> w = uniform(size_t(c.width), 0.5f, 1.5f, uint64_t(23 + c.width));
    DeviceBuffer dox(n * 4), dg(ng * 4), dw(w.size() * 4);
    dox.upload(o), dg.upload(g), dw.upload(w);
    GroupNormGateParams p;
    p.rows = c.rows, p.width = c.width, p.groups = c.groups, p.ld_gate = c.ld_gate, p.eps = 1e-6;
    p.o = dox.as<float>(), p.w = dw.as<float>(), p.gate = dg.as<float>();
    kernels::launch_group_norm_gate(p, nullptr);
    TEST_CUDA(cudaDeviceSynchronize());
    p.o = o.data(), p.w = w.data(), p.gate = g.data();
    ref::group_norm_gate(p);
    EXPECT_TRUE(close_f32("group_norm_gate " + shape({c.rows, c.width, c.groups, c.ld_gate}), dox.download<float>(n),
                          o));
  }
}

TEST(RopeKernels, RopeMatchesRef) {
  SKIP_WITHOUT_CUDA();
  struct Case { int64_t rows, heads, row_stride, head_stride, offset, rope_dim; bool inter; float af; };
  // MLA q_pe (64 heads of 192, RoPE on the last 64, interleaved), MLA k_pe (one head of 64 after a 512 latent),
  // NeoX on GQA-like heads with a YaRN factor, a prime row count, the smallest rotary width
  for (const Case& c : {Case{3, 64, 64 * 192, 192, 128, 64, true, 1.0f}, Case{5, 1, 576, 576, 512, 64, true, 1.0f},
                        Case{7, 8, 8 * 128, 128, 0, 64, false, 1.2f}, Case{13, 3, 3 * 40, 40, 0, 40, false, 1.0f},
                        Case{2, 2, 2 * 6, 6, 4, 2, true, 0.9f}}) {
    const size_t n = size_t(c.rows * c.row_stride);
    std::vector<float> x = uniform(n, -2, 2, uint64_t(31 + c.rows * c.heads));
    const std::vector<int64_t> pos = positions(c.rows, uint64_t(32 + c.rows));
    ref::RopeFreqParams fp;
    fp.rope_dim = c.rope_dim, fp.theta = 6e6;
    const std::vector<float> inv = ref::rope_freqs(fp).inv_freq;
    DeviceBuffer dx(n * 4), dp(pos.size() * 8), di(inv.size() * 4);
    dx.upload(x), dp.upload(pos), di.upload(inv);
    RopeParams p;
    p.rows = c.rows, p.heads = c.heads, p.row_stride = c.row_stride, p.head_stride = c.head_stride;
    p.rope_dim = c.rope_dim, p.attention_factor = c.af, p.interleaved = c.inter;
    p.x = dx.as<float>() + c.offset, p.pos = dp.as<int64_t>(), p.inv_freq = di.as<float>();
    kernels::launch_rope(p, nullptr);
    TEST_CUDA(cudaDeviceSynchronize());
    p.x = x.data() + c.offset, p.pos = pos.data(), p.inv_freq = inv.data();
    ref::rope(p);
    EXPECT_TRUE(close_f32("rope " + shape({c.rows, c.heads, c.rope_dim}) + (c.inter ? " interleaved" : " neox"),
                          dx.download<float>(n), x));
  }
}

TEST(RopeKernels, QkNormRopeMatchesRef) {
  SKIP_WITHOUT_CUDA();
  struct Case { int64_t rows, nq, nk, hd, extra_heads, rope_dim; bool norm, inter; };
  // Lightning rows (64 q + 64 k heads, 64 v heads after them), GQA rows (64 q + 8 k, 8 v), no QK-norm weights,
  // interleaved, an odd head dim, the largest head
  for (const Case& c : {Case{3, 64, 64, 128, 64, 64, true, false}, Case{1, 64, 8, 128, 8, 64, true, false},
                        Case{5, 4, 2, 64, 2, 32, false, false}, Case{2, 16, 4, 128, 4, 64, true, true},
                        Case{7, 3, 1, 67, 0, 32, true, false}, Case{2, 1, 1, 1024, 0, 512, true, false}}) {
    const int64_t ld = (c.nq + c.nk + c.extra_heads) * c.hd;
    const size_t n = size_t(c.rows * ld);
    std::vector<float> x = uniform(n, -3, 3, uint64_t(41 + c.hd + c.nq));
    std::vector<float> wq = uniform(size_t(c.hd), 0.5f, 1.5f, 42), wk = uniform(size_t(c.hd), 0.5f, 1.5f, 43);
    const std::vector<int64_t> pos = positions(c.rows, uint64_t(44 + c.rows));
    ref::RopeFreqParams fp;
    fp.rope_dim = c.rope_dim, fp.theta = 6e5;
    const std::vector<float> inv = ref::rope_freqs(fp).inv_freq;
    DeviceBuffer dx(n * 4), dq(wq.size() * 4), dk(wk.size() * 4), dp(pos.size() * 8), di(inv.size() * 4);
    dx.upload(x), dq.upload(wq), dk.upload(wk), dp.upload(pos), di.upload(inv);
    QkNormRopeParams p;
    p.rows = c.rows, p.nq = c.nq, p.nk = c.nk, p.hd = c.hd, p.ld = ld, p.rope_dim = c.rope_dim, p.eps = 1e-6;
    p.attention_factor = 1.0f, p.interleaved = c.inter;
    p.x = dx.as<float>(), p.pos = dp.as<int64_t>(), p.inv_freq = di.as<float>();
    p.wq = c.norm ? dq.as<float>() : nullptr, p.wk = c.norm ? dk.as<float>() : nullptr;
    kernels::launch_qk_norm_rope(p, nullptr);
    TEST_CUDA(cudaDeviceSynchronize());
    p.x = x.data(), p.pos = pos.data(), p.inv_freq = inv.data();
    p.wq = c.norm ? wq.data() : nullptr, p.wk = c.norm ? wk.data() : nullptr;
    ref::qk_norm_rope(p);
    EXPECT_TRUE(close_f32("qk_norm_rope " + shape({c.rows, c.nq, c.nk, c.hd, c.rope_dim}) +
                              (c.norm ? "" : " no norm") + (c.inter ? " interleaved" : ""),
                          dx.download<float>(n), x));
  }
}

TEST(RopeKernels, RejectsBadShapes) {
  SKIP_WITHOUT_CUDA();
  QkNormRopeParams p;
  p.rows = 1, p.nq = 1, p.nk = 1, p.hd = kernels::kQkNormRopeMaxHead + 1, p.rope_dim = 64;
  EXPECT_THROW(kernels::launch_qk_norm_rope(p, nullptr), Error);
  p.hd = 64, p.rope_dim = 65;
  EXPECT_THROW(kernels::launch_qk_norm_rope(p, nullptr), Error);
  RmsNormParams r;
  r.rows = 1, r.dim = 10, r.groups = 3;
  EXPECT_THROW(kernels::launch_rms_norm(r, nullptr), Error);
}

TEST(ElementwiseKernels, EmbedAndSwigluMatchRef) {
  SKIP_WITHOUT_CUDA();
  for (int64_t H : {8192, 7}) {
    const int64_t vocab = 1000, n = 9;
    std::vector<float> table = uniform(size_t(vocab * H), -1, 1, uint64_t(51 + H)), out(size_t(n * H));
    std::vector<int32_t> ids = {0, 999, 5, 5, 17, 998, 1, 500, 0};
    DeviceBuffer dt(table.size() * 4), di(ids.size() * 4), dout(out.size() * 4);
    dt.upload(table), di.upload(ids);
    EmbedParams p;
    p.n = n, p.H = H, p.ids = di.as<int32_t>(), p.table = dt.as<float>(), p.out = dout.as<float>();
    kernels::launch_embed(p, nullptr);
    TEST_CUDA(cudaDeviceSynchronize());
    p.ids = ids.data(), p.table = table.data(), p.out = out.data();
    ref::embed(p);
    EXPECT_EQ(dout.download<float>(out.size()), out) << "embed H " << H;
  }
  struct Case { int64_t rows, I, ldo; };
  for (const Case& c : {Case{3, 2048, 0}, Case{1, 512, 0}, Case{5, 13, 20}}) {
    const int64_t ldo = c.ldo ? c.ldo : c.I;
    std::vector<float> gu = uniform(size_t(c.rows * 2 * c.I), -8, 8, uint64_t(61 + c.I));
    std::vector<float> out(size_t(c.rows * ldo), 0.0f);
    DeviceBuffer dg(gu.size() * 4), dout(out.size() * 4);
    dg.upload(gu), dout.upload(out);
    SwigluParams p;
    p.rows = c.rows, p.I = c.I, p.ldo = c.ldo, p.gu = dg.as<float>(), p.out = dout.as<float>();
    kernels::launch_swiglu(p, nullptr);
    TEST_CUDA(cudaDeviceSynchronize());
    p.gu = gu.data(), p.out = out.data();
    ref::swiglu(p);
    EXPECT_TRUE(close_f32("swiglu " + shape({c.rows, c.I, ldo}), dout.download<float>(out.size()), out));
  }
}

}  // namespace
}  // namespace ling::test
