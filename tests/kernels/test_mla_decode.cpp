// Absorbed MLA decode over the paged latent cache vs ref::mla_decode_absorbed (architecture.md §2.7 step 7).
// The test absorbs W_UK into the query (q̃ = W_UKᵀ q_nope, fp64 → fp32), runs the kernel for u, applies W_UV
// (o = W_UV u, fp64) and compares o with the reference's o at rtol 1e-4 (kernel_test_util.h). Pages are a random
// permutation; shapes: 1 token, lengths off the 64-token page and 32-token tile, several head groups with a
// partial one, forced and automatic splits (empty splits included), Ling-2.5-1T's 64 heads and a TP8 shard.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "kernel_test_util.h"
#include "mla_params.h"

namespace ling::test {
namespace {

constexpr int64_t R = kernels::kMlaLatent, DR = kernels::kMlaRope, ROW = kernels::kMlaRow, PAGE = kernels::kMlaPage;

// tensor_cores: the bf16-query path. Its query must be bf16 for the kernel and the reference alike, so the test
// makes q̃ exactly representable: kv_b rounded to bf16, q_nope_h = 4 · e_{j_h} (one random coordinate per head),
// q_pe rounded to bf16; then q̃_h = 4 · W_UK_h[j_h, :] exactly and the kernel sees the reference's query; the
// output is judged by the fp32 rule like the fp32 path (the kernel keeps the softmax weights as bf16 hi + lo).
// Tensor-core variants: mma.sync (wgmma = false), the wgmma kernel above 16 heads (the default), and the wgmma
// kernel with one bf16 operand for the softmax weights (judged on u by the bound of that rounding,
// check_u_bf16_weights, and on o by the bf16 cosine rule of house-style.md §4).
// kPingPong: bf16 weights, ping-pong schedule; kTma: bf16 weights, pages by TMA from the pool
enum class Tc { kMmaSync, kWgmma, kBf16Weights, kPingPong, kTma };

// bf16 softmax weights: each weight e^{s−m} enters P·C rounded to bf16 (relative error ≤ 2⁻⁸) while the
// normaliser stays fp32, so every latent column of u = Σ_t p_t c_t is within 2⁻⁸ · Σ_t p_t |c_t,k| of the exact
// value (plus 1e-5 of the same sum for the fp32 scores): checked element by element on the kernel's u of sequence
// b (fp64 reference from the bf16-exact q̃ and cache rows); u_bad counts elements beyond, u_worst the largest
// error as a fraction of its bound.
void check_u_bf16_weights(const std::vector<float>& q_abs, const std::vector<float>& rows, const std::vector<float>& u,
                          int64_t b, int64_t nh, int64_t len, float scale, int64_t& u_bad, double& u_worst) {
  std::vector<double> pr(static_cast<size_t>(len));
  for (int64_t h = 0; h < nh; ++h) {
    const float* q = &q_abs[size_t((b * nh + h) * ROW)];
    double mx = -INFINITY, l = 0;
    for (int64_t t = 0; t < len; ++t) {
      double s = 0;
      for (int64_t c = 0; c < ROW; ++c) s += double(q[c]) * rows[size_t(t * ROW + c)];
      pr[size_t(t)] = s * scale;
      mx = std::max(mx, pr[size_t(t)]);
    }
    for (int64_t t = 0; t < len; ++t) l += (pr[size_t(t)] = std::exp(pr[size_t(t)] - mx));
    for (int64_t k = 0; k < R; ++k) {
      double ref = 0, mag = 0;
      for (int64_t t = 0; t < len; ++t) {
        const double c = rows[size_t(t * ROW + k)];
        ref += pr[size_t(t)] * c, mag += pr[size_t(t)] * std::fabs(c);
      }
      const double err = std::fabs(u[size_t((b * nh + h) * R + k)] - ref / l), bound = (0x1p-8 + 1e-5) * mag / l;
      u_bad += err > bound;
      u_worst = std::max(u_worst, err / bound);
    }
  }
}

// per_seq: each sequence's rows contiguous in its own place (MlaDecodeParams::seq_cache, no page table) instead
// of pages of one pool.
void run_mla(int64_t nh, const std::vector<int64_t>& lens, int64_t splits, uint64_t seed, bool tensor_cores = false,
             Tc variant = Tc::kMmaSync, bool per_seq = false) {
  const int64_t B = int64_t(lens.size()), dq = kMlaNope + DR;
  const int64_t max_len = *std::max_element(lens.begin(), lens.end());
  const int64_t max_pages = std::max<int64_t>(1, (max_len + PAGE - 1) / PAGE);
  int64_t total_pages = 0;
  for (int64_t l : lens) total_pages += (l + PAGE - 1) / PAGE;
  total_pages += 3;  // pages nobody uses
  std::vector<int32_t> perm(static_cast<size_t>(total_pages));
  std::iota(perm.begin(), perm.end(), 0);
  std::shuffle(perm.begin(), perm.end(), std::mt19937_64(seed));
  std::vector<int32_t> table(static_cast<size_t>(B * max_pages), 0), seq(static_cast<size_t>(B));
  int64_t next = 0;
  for (int64_t b = 0; b < B; ++b) {
    seq[size_t(b)] = int32_t(lens[size_t(b)]);
    for (int64_t pg = 0; pg < (lens[size_t(b)] + PAGE - 1) / PAGE; ++pg) table[size_t(b * max_pages + pg)] = perm[size_t(next++)];
  }
  std::vector<float> cache = uniform(size_t(total_pages * PAGE * ROW), -1, 1, seed + 1);
  const auto cache_bf = to_bf16(cache);
  std::vector<float> q_full = uniform(size_t(B * nh * dq), -2, 2, seed + 2);
  std::vector<float> kv_b = uniform(size_t(nh * (kMlaNope + kMlaV) * R), -0.1f, 0.1f, seed + 3);
  if (tensor_cores) {
    kv_b = uniform(kv_b.size(), -1, 1, seed + 3);
    to_bf16(kv_b);
    std::mt19937_64 rng(seed + 4);
    for (int64_t i = 0; i < B * nh; ++i) {
      float* qn = &q_full[size_t(i * dq)];
      std::fill(qn, qn + kMlaNope, 0.0f);
      qn[rng() % kMlaNope] = 4.0f;
      for (int64_t c = kMlaNope; c < dq; ++c) qn[c] = round_bf16(qn[c]);
    }
  }
  std::vector<float> q_abs(size_t(B * nh * ROW));  // q̃ ‖ q_pe
  for (int64_t b = 0; b < B; ++b)
    for (int64_t h = 0; h < nh; ++h) {
      const float* qn = &q_full[size_t((b * nh + h) * dq)];
      const float* wuk = &kv_b[size_t(h * (kMlaNope + kMlaV) * R)];
      float* dst = &q_abs[size_t((b * nh + h) * ROW)];
      for (int64_t c = 0; c < R; ++c) {
        double s = 0;
        for (int64_t n = 0; n < kMlaNope; ++n) s += double(wuk[n * R + c]) * qn[n];
        dst[c] = float(s);
      }
      for (int64_t c = 0; c < DR; ++c) dst[R + c] = qn[kMlaNope + c];
    }

  int dev = 0, sms = 0;
  TEST_CUDA(cudaGetDevice(&dev));
  TEST_CUDA(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev));
  DeviceBuffer dq_(q_abs.size() * 4), dcache(cache_bf.size() * 2), dtable(table.size() * 4), dseq(seq.size() * 4),
      du(size_t(B * nh * R) * 4), dws(kernels::mla_decode_workspace_bytes(B, nh, max_len, splits, sms, tensor_cores));
  dq_.upload(q_abs), dcache.upload(cache_bf), dtable.upload(table), dseq.upload(seq);
  kernels::MlaDecodeParams p;
  std::vector<float> q_round = q_abs;
  const std::vector<uint16_t> q_bf = to_bf16(q_round);
  DeviceBuffer dqb(q_bf.size() * 2);
  dqb.upload(q_bf);
  if (tensor_cores) {
    EXPECT_EQ(q_round, q_abs) << "the test's q̃ must be exact in bf16";
  }
  p.q = tensor_cores ? nullptr : dq_.as<float>(), p.q_bf16 = tensor_cores ? dqb.as<uint16_t>() : nullptr;
  p.cache = dcache.as<uint16_t>(), p.page_table = dtable.as<int32_t>();
  p.seq_len = dseq.as<int32_t>(), p.u = du.as<float>(), p.workspace = dws.ptr;
  p.B = B, p.nh = nh, p.max_pages = max_pages, p.max_seq_len = max_len, p.splits = splits;
  p.scale = float(1.0 / std::sqrt(192.0));
  const bool bf16w = variant == Tc::kBf16Weights || variant == Tc::kPingPong || variant == Tc::kTma;
  p.wgmma = variant != Tc::kMmaSync, p.bf16_softmax_weights = bf16w, p.pingpong = variant == Tc::kPingPong;
  p.tma = variant == Tc::kTma, p.num_pages = int64_t(cache_bf.size()) / (PAGE * ROW);
  // per_seq: sequence b's rows at row offset off[b] of one buffer, 5 unused rows between sequences
  std::vector<uint16_t> flat;
  std::vector<int64_t> off;
  for (int64_t b = 0; b < B; ++b) {
    off.push_back(int64_t(flat.size()) / ROW);
    for (int64_t t = 0; t < lens[size_t(b)]; ++t) {
      const int64_t page = table[size_t(b * max_pages + t / PAGE)];
      flat.insert(flat.end(), cache_bf.begin() + (page * PAGE + t % PAGE) * ROW,
                  cache_bf.begin() + (page * PAGE + t % PAGE + 1) * ROW);
    }
    flat.resize(flat.size() + 5 * ROW, 0);
  }
  DeviceBuffer dflat(flat.size() * 2), dptrs(size_t(B) * sizeof(void*));
  if (per_seq) {
    dflat.upload(flat);
    std::vector<const uint16_t*> ptrs;
    for (int64_t b = 0; b < B; ++b) ptrs.push_back(dflat.as<uint16_t>() + off[size_t(b)] * ROW);
    dptrs.upload(ptrs);
    p.cache = nullptr, p.page_table = nullptr, p.seq_cache = dptrs.as<const uint16_t* const>();
  }
  // TMA over per-sequence rows: each sequence's tensor map covers its rows and the 5 zero rows after them (the
  // next sequence's rows lie beyond and must read as zeros).
  struct alignas(64) SeqMap {
    unsigned char bytes[kernels::kMlaSeqMapBytes];
  };
  std::vector<SeqMap> maps(static_cast<size_t>(B));
  DeviceBuffer dmaps(size_t(B) * sizeof(SeqMap));
  if (per_seq && variant == Tc::kTma) {
    for (int64_t b = 0; b < B; ++b)
      kernels::mla_encode_seq_map(&maps[size_t(b)], dflat.as<uint16_t>() + off[size_t(b)] * ROW, lens[size_t(b)] + 5);
    dmaps.upload(maps);
    p.seq_maps = dmaps.ptr;
  }
  kernels::launch_mla_decode(p, nullptr);
  TEST_CUDA(cudaDeviceSynchronize());
  const std::vector<float> u = du.download<float>(size_t(B * nh * R));

  std::vector<float> o_kernel, o_ref;
  int64_t u_bad = 0;
  double u_worst = 0;
  for (int64_t b = 0; b < B; ++b) {
    const int64_t len = lens[size_t(b)];
    std::vector<float> rows(size_t(std::max<int64_t>(len, 1) * ROW), 0.0f);
    for (int64_t t = 0; t < len; ++t) {
      const int64_t page = table[size_t(b * max_pages + t / PAGE)];
      std::copy_n(&cache[size_t((page * PAGE + t % PAGE) * ROW)], ROW, &rows[size_t(t * ROW)]);
    }
    if (bf16w) check_u_bf16_weights(q_abs, rows, u, b, nh, len, p.scale, u_bad, u_worst);
    const int64_t qpos = len - 1;
    std::vector<float> o(size_t(nh * kMlaV));
    ref::mla_decode_absorbed(to_ref(p, {q_full.data(), kv_b.data(), rows.data(), &qpos, o.data()}, b, len));
    o_ref.insert(o_ref.end(), o.begin(), o.end());
    for (int64_t h = 0; h < nh; ++h) {
      const float* wuv = &kv_b[size_t((h * (kMlaNope + kMlaV) + kMlaNope) * R)];
      const float* uh = &u[size_t((b * nh + h) * R)];
      for (int64_t i = 0; i < kMlaV; ++i) {
        double s = 0;
        for (int64_t c = 0; c < R; ++c) s += double(wuv[i * R + c]) * uh[c];
        o_kernel.push_back(float(s));
      }
    }
  }
  std::string tag = "nh=" + std::to_string(nh) + " splits=" +
                    std::to_string(kernels::mla_decode_splits(B, nh, max_len, splits, sms, tensor_cores)) + " lens=";
  for (int64_t l : lens) tag += std::to_string(l) + ",";
  if (bf16w) {
    if (variant == Tc::kPingPong) tag = "ping-pong " + tag;
    if (variant == Tc::kTma) tag = "tma " + tag;
    std::printf("  u (wgmma, bf16 softmax weights) %s: %lld of %lld beyond the rounding bound, worst at %.3f of it\n",
                tag.c_str(), (long long)u_bad, (long long)(B * nh * R), u_worst);
    EXPECT_EQ(u_bad, 0) << tag;
    const ref::CompareReport rep = ref::compare_f32("o (wgmma, bf16 softmax weights) " + tag, {int64_t(o_kernel.size())},
                                                    o_kernel.data(), o_ref.data(), tol(1e30, 1e30, 1e-5));
    std::printf("  %s\n", rep.line().c_str());
    EXPECT_TRUE(rep.ok) << rep.line();
  } else
    EXPECT_TRUE(close_f32(std::string(!tensor_cores                        ? "o "
                                      : variant == Tc::kWgmma && nh > 16 ? "o (wgmma) "
                                                                         : "o (mma.sync) ") +
                              tag,
                          o_kernel, o_ref));
}

TEST(MlaDecode, AwkwardShapes) {
  SKIP_WITHOUT_CUDA();
  run_mla(1, {1}, 0, 500);
  run_mla(5, {1, 65, 200}, 0, 501);
  run_mla(17, {127, 64, 31}, 2, 502);
  run_mla(3, {97, 1, 300}, 5, 503);
}

TEST(MlaDecode, LingDims) {
  SKIP_WITHOUT_CUDA();
  run_mla(64, {1000, 4099}, 0, 510);          // 64 heads, many splits (some empty for the short sequence)
  run_mla(8, {3, 2049, 16384, 777}, 0, 511);  // TP8 shard, 16K context
}

TEST(MlaDecode, TensorCoresAwkwardShapes) {
  SKIP_WITHOUT_CUDA();
  run_mla(1, {1}, 0, 520, true);
  run_mla(5, {1, 65, 200}, 0, 521, true);
  run_mla(17, {127, 64, 31}, 2, 522, true);  // two CTAs of 64 rows, the second mostly padding
  run_mla(3, {97, 1, 300}, 5, 523, true);
}

TEST(MlaDecode, TensorCoresLingDims) {
  SKIP_WITHOUT_CUDA();
  run_mla(64, {1000, 4099}, 0, 530, true);
  run_mla(8, {3, 2049, 16384, 777}, 0, 531, true);
  run_mla(130, {70, 33}, 0, 532, true);      // more than 64 heads: three head groups
  run_mla(64, {16384, 63, 129}, 0, 533, true);  // 16K context, a page's last token and one past it
}

// The warpgroup-MMA kernel (more than 16 heads; at ≤ 16 heads the flag keeps mma.sync).
TEST(MlaDecode, Wgmma) {
  SKIP_WITHOUT_CUDA();
  run_mla(64, {1000, 4099}, 0, 540, true, Tc::kWgmma);
  run_mla(17, {127, 64, 31}, 2, 541, true, Tc::kWgmma);   // one CTA of 64 rows, 17 of them heads
  run_mla(130, {70, 33}, 0, 542, true, Tc::kWgmma);       // three head groups
  run_mla(64, {16384, 63, 129, 1}, 0, 543, true, Tc::kWgmma);
  run_mla(8, {3, 2049}, 0, 544, true, Tc::kWgmma);        // ≤ 16 heads: mma.sync
}

// Each sequence's rows contiguous in its own place (what the CUDA backend's per-sequence caches give), all paths.
TEST(MlaDecode, PerSequenceRows) {
  SKIP_WITHOUT_CUDA();
  run_mla(64, {1000, 4099, 1, 64}, 0, 560, true, Tc::kWgmma, true);
  run_mla(8, {3, 2049, 777}, 0, 561, true, Tc::kMmaSync, true);
  run_mla(64, {130, 65}, 2, 562, true, Tc::kMmaSync, true);
  run_mla(5, {1, 65, 200}, 0, 563, false, Tc::kMmaSync, true);
}

// The wgmma kernel with bf16 softmax weights (the precision class of the usual MLA decode kernels).
TEST(MlaDecode, Bf16SoftmaxWeights) {
  SKIP_WITHOUT_CUDA();
  run_mla(64, {1000, 4099, 1}, 0, 550, true, Tc::kBf16Weights);
  run_mla(130, {70, 33}, 3, 551, true, Tc::kBf16Weights);
}

// The ping-pong schedule (bf16 softmax weights): odd and even page counts per split, a one-token sequence,
// empty splits, partial head groups, per-sequence rows, a 16K context.
TEST(MlaDecodePingPong, Shapes) {
  SKIP_WITHOUT_CUDA();
  run_mla(64, {1000, 4099, 1}, 0, 570, true, Tc::kPingPong);
  run_mla(130, {70, 33}, 3, 571, true, Tc::kPingPong);
  run_mla(17, {127, 64, 31, 128}, 2, 572, true, Tc::kPingPong);
  run_mla(64, {16384, 63, 129, 65}, 0, 573, true, Tc::kPingPong);
  run_mla(64, {1000, 4099, 1, 64}, 0, 574, true, Tc::kPingPong, true);
}

// TMA page loads (bf16 softmax weights; the page pool, and per-sequence rows with their tensor maps): odd and even
// page counts, a one-token sequence, empty splits, partial head groups and last pages, a 16K context.
TEST(MlaDecodeTma, Shapes) {
  SKIP_WITHOUT_CUDA();
  run_mla(64, {1000, 4099, 1}, 0, 580, true, Tc::kTma);
  run_mla(130, {70, 33}, 3, 581, true, Tc::kTma);
  run_mla(17, {127, 64, 31, 128}, 2, 582, true, Tc::kTma);
  run_mla(64, {16384, 63, 129, 65}, 0, 583, true, Tc::kTma);
  run_mla(64, {1000, 4099, 1, 64, 130}, 0, 584, true, Tc::kTma, true);  // per-sequence rows and tensor maps
  run_mla(130, {70, 33}, 3, 585, true, Tc::kTma, true);
}

TEST(MlaDecode, RejectsBadParams) {
  SKIP_WITHOUT_CUDA();
  kernels::MlaDecodeParams p;
  p.B = 1, p.nh = 1, p.max_pages = 1, p.max_seq_len = 10;
  EXPECT_THROW(kernels::launch_mla_decode(p, nullptr), Error);  // null pointers
  p.max_seq_len = 65;
  EXPECT_THROW(kernels::launch_mla_decode(p, nullptr), Error);  // more than max_pages · 64
}

}  // namespace
}  // namespace ling::test
