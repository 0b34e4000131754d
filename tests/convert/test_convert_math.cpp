// GQA → MLA conversion math (conversion.md §2, §4; lib/convert): the QK-norm fold, the eigensolver, and the
// exactness of the converted attention on random checkpoints — with no QK-norm and a latent wide enough for all
// of K-NoPE and V, the MLA model (latent RMSNorms switched off, the one nonlinearity the format adds) gives the
// GQA model's logits; absorbed decode on converted weights equals a full forward. Every logit is compared.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <random>

#include "engine_cpu/tiny_model.h"
#include "ling/convert/convert.h"
#include "ling/convert/linalg.h"
#include "ling/convert/qk_fusion.h"

namespace ling::test {
namespace {

using convert::MatD;

std::string tmp_path(const std::string& tag) {
  return (std::filesystem::temp_directory_path() / ("ling_convert_" + tag + "_" + std::to_string(::getpid())))
      .string();
}

TEST(QkFusion, FoldScalesEveryQueryAndKeyRowByGainTimesConstant) {
  const int64_t H = 5, nh = 4, nkv = 2, d = 3;
  std::mt19937 rng(3);
  std::normal_distribution<float> nd;
  std::vector<float> w(size_t((nh + 2 * nkv) * d * H)), b(size_t((nh + 2 * nkv) * d)), gq(d), gk(d);
  for (auto* v : {&w, &b, &gq, &gk})
    for (float& x : *v) x = nd(rng);
  std::vector<float> w0 = w, b0 = b;
  convert::QkScales c{{0.5, 2.0, 3.0, 0.25}, {1.5, 0.75}};
  convert::fold_qk_norm(w.data(), b.data(), H, nh, nkv, d, gq.data(), gk.data(), c);
  for (int64_t r = 0; r < (nh + 2 * nkv) * d; ++r) {
    double f = 1.0;
    if (r < nh * d) f = c.q[size_t(r / d)] * gq[size_t(r % d)];
    else if (r < (nh + nkv) * d) f = c.k[size_t((r - nh * d) / d)] * gk[size_t(r % d)];
    for (int64_t i = 0; i < H; ++i)
      EXPECT_EQ(w[size_t(r * H + i)], float(double(w0[size_t(r * H + i)]) * f)) << "row " << r;
    EXPECT_EQ(b[size_t(r)], float(double(b0[size_t(r)]) * f)) << "bias row " << r;
  }
}

TEST(QkFusion, AntMethodIsThePooledRmsOfEquation1) {
  convert::QkStats s;
  s.init(2, 1, 4);
  s.tokens = 10;
  s.q_sumsq = {40.0, 120.0};  // pooled mean square (160)/(10·4·2) = 2
  s.k_sumsq = {360.0};        // 360/(10·4) = 9
  const convert::QkScales c = convert::qk_scales(s, convert::QkMethod::Ant, 0.0);
  EXPECT_DOUBLE_EQ(c.q[0], 1.0 / std::sqrt(2.0));
  EXPECT_DOUBLE_EQ(c.q[1], 1.0 / std::sqrt(2.0));
  EXPECT_DOUBLE_EQ(c.k[0], 1.0 / 3.0);
}

TEST(Linalg, SymEigIsDescendingOrthonormalAndSatisfiesAvEqualsLambdaV) {
  const int64_t n = 37;
  std::mt19937 rng(5);
  std::normal_distribution<double> nd;
  MatD x(n + 3, n);
  for (double& v : x.v) v = nd(rng);
  const MatD a = convert::matmul_tn(x, x);
  const convert::SymEig e = convert::sym_eig(a);
  for (int64_t j = 1; j < n; ++j) EXPECT_GE(e.values[size_t(j - 1)], e.values[size_t(j)]);
  const MatD av = convert::matmul(a, e.vectors), vtv = convert::matmul_tn(e.vectors, e.vectors);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t j = 0; j < n; ++j) {
      EXPECT_NEAR(av(i, j), e.values[size_t(j)] * e.vectors(i, j), 1e-9 * e.values[0]);
      EXPECT_NEAR(vtv(i, j), i == j ? 1.0 : 0.0, 1e-12);
    }
}

// Logits of every position of `ids` (one prefill) through a CPU engine.
std::vector<float> all_logits(const std::string& dir, const std::vector<int32_t>& ids, bool latent_norm) {
  BackendOptions bo;
  bo.mla_latent_norm = latent_norm;
  auto eng = open_engine(dir, bo);
  auto seq = eng->new_sequence();
  return eng->prefill(*seq, ids, true);
}

void expect_close_all(const std::vector<float>& a, const std::vector<float>& b, double tol, const std::string& what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  double worst = 0;
  size_t bad = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    const double e = std::fabs(double(a[i]) - b[i]) / (1.0 + std::fabs(double(b[i])));
    worst = std::max(worst, e);
    if (!(e <= tol)) ++bad;
  }
  EXPECT_EQ(bad, 0u) << what << ": " << bad << " of " << a.size() << " logits off, worst " << worst;
}

std::string gqa_config(int nkv, bool qkv_bias) {
  nlohmann::json j = nlohmann::json::parse(ling2_config());
  j["use_qk_norm"] = false;
  j["num_key_value_heads"] = nkv;
  j["use_qkv_bias"] = qkv_bias;
  return j.dump();
}

// Key rope rows of every KV head made proportional to head 0's: the RoRoPE residue then carries no energy and
// the conversion is exact for nkv > 1 too.
TensorEdit proportional_rope_keys(int64_t nh, int64_t nkv, int64_t d, int64_t rd) {
  return [=](const std::string& name, std::vector<int64_t>& shape, std::vector<float>& v) {
    if (name.find("query_key_value") == std::string::npos) return;
    const int64_t H = shape.size() == 2 ? shape[1] : 1;
    for (int64_t g = 1; g < nkv; ++g)
      for (int64_t j = 0; j < rd; ++j)
        for (int64_t i = 0; i < H; ++i)
          v[size_t(((nh + g) * d + j) * H + i)] = float(0.5 * double(g + 1)) * v[size_t((nh * d + j) * H + i)];
  };
}

struct Case {
  int nkv;
  bool bias;
  int64_t q_lora;
};

class MlaExact : public ::testing::TestWithParam<Case> {};

TEST_P(MlaExact, FullRankConversionReproducesTheGqaLogits) {
  const Case c = GetParam();
  const std::string tag = "exact" + std::to_string(c.nkv) + (c.bias ? "b" : "") + std::to_string(c.q_lora);
  const std::string src = make_tiny_model(tag, gqa_config(c.nkv, c.bias), 11, proportional_rope_keys(4, c.nkv, 16, 8));
  convert::ConvertOptions o;
  o.in = src;
  o.out = tmp_path(tag + "_out");
  o.kv_lora_rank = 2 * c.nkv * 16 - 8;  // all of K-NoPE and V
  o.q_lora_rank = c.q_lora;
  o.force = true;
  const nlohmann::json r = convert::convert_checkpoint(o);
  for (const auto& l : r["layers"]) {
    EXPECT_NEAR(l["rope_energy"].get<double>(), 1.0, 1e-9);
    EXPECT_NEAR(l["latent_energy"].get<double>(), 1.0, 1e-9);
  }
  std::vector<int32_t> ids;
  for (int i = 0; i < 40; ++i) ids.push_back(int32_t((i * 37 + 5) % 96));
  const std::vector<float> ref = all_logits(src, ids, true);
  const std::vector<float> got = all_logits(o.out, ids, false);
  expect_close_all(got, ref, 2e-4, tag);
  std::filesystem::remove_all(src);
  std::filesystem::remove_all(o.out);
}

// With the linear latent norms (MlaOptions::linear_latent_norm) the full-rank conversion is exact inside the
// official format: the engine's kv_a_layernorm and q_a_layernorm stay on.
TEST(MlaExactLinearNorm, FullRankConversionReproducesTheGqaLogitsWithTheLatentNormsOn) {
  const std::string src = make_tiny_model("exactlin", gqa_config(2, true), 17, proportional_rope_keys(4, 2, 16, 8));
  convert::ConvertOptions o;
  o.in = src;
  o.out = tmp_path("exactlin_out");
  o.kv_lora_rank = 2 * 2 * 16 - 8;
  o.q_lora_rank = 64;
  o.linear_latent_norm = true;
  o.force = true;
  const nlohmann::json r = convert::convert_checkpoint(o);
  for (const auto& l : r["layers"]) EXPECT_EQ(l["latent_norm"].get<std::string>(), "linear");
  std::vector<int32_t> ids;
  for (int i = 0; i < 40; ++i) ids.push_back(int32_t((i * 41 + 3) % 96));
  const std::vector<float> ref = all_logits(src, ids, true);
  expect_close_all(all_logits(o.out, ids, true), ref, 2e-4, "linear latent norms on");
  // The E[rms] gain (the default) is not exact: every token's latent is divided by its own RMS.
  o.linear_latent_norm = false;
  convert::convert_checkpoint(o);
  const std::vector<float> rms = all_logits(o.out, ids, true);
  double worst = 0;
  for (size_t i = 0; i < rms.size(); ++i)
    worst = std::max(worst, std::fabs(double(rms[i]) - ref[i]) / (1.0 + std::fabs(double(ref[i]))));
  EXPECT_GT(worst, 1e-3) << "the RMS latent norm should move the logits";
  std::filesystem::remove_all(src);
  std::filesystem::remove_all(o.out);
}

INSTANTIATE_TEST_SUITE_P(Shapes, MlaExact,
                         ::testing::Values(Case{1, false, 0}, Case{2, true, 0}, Case{4, false, 64}));

TEST(MlaConverted, AbsorbedDecodeEqualsTheNonAbsorbedForward) {
  const std::string src = make_tiny_model("absorb", gqa_config(2, false), 13);
  convert::ConvertOptions o;
  o.in = src;
  o.out = tmp_path("absorb_out");
  o.kv_lora_rank = 20;  // lossy on purpose: the equality is between two forms of the same converted model
  o.force = true;
  convert::convert_checkpoint(o);
  std::vector<int32_t> ids;
  for (int i = 0; i < 30; ++i) ids.push_back(int32_t((i * 53 + 1) % 96));
  const std::vector<float> full = all_logits(o.out, ids, true);  // one non-absorbed prefill over 30 tokens
  auto eng = open_engine(o.out);
  auto seq = eng->new_sequence();
  std::vector<float> got = eng->prefill(*seq, std::vector<int32_t>(ids.begin(), ids.begin() + 24), true);
  for (size_t t = 24; t < ids.size(); ++t) {
    std::vector<float> step = eng->decode({seq.get()}, {ids[t]});  // absorbed single-token steps
    got.insert(got.end(), step.begin(), step.end());
  }
  expect_close_all(got, full, 2e-5, "absorbed decode vs prefill");
  std::filesystem::remove_all(src);
  std::filesystem::remove_all(o.out);
}

TEST(HybridConverted, LightningLayersCopyEachKvHeadToItsQueryHeads) {
  nlohmann::json j = nlohmann::json::parse(ling2_config());
  j["num_hidden_layers"] = 4;
  j["num_key_value_heads"] = 2;
  const std::string src = make_tiny_model("hybrid", j.dump(), 17);
  convert::ConvertOptions o;
  o.in = src;
  o.out = tmp_path("hybrid_out");
  o.to = "hybrid";
  o.layer_group_size = 2;
  o.kv_lora_rank = 16;
  o.force = true;
  const nlohmann::json r = convert::convert_checkpoint(o);
  ASSERT_EQ(r["layers"].size(), 4u);
  const ModelConfig cfg = load_config(o.out);
  EXPECT_EQ(cfg.family, Family::Ling25);
  Checkpoint in = Checkpoint::open(src), out = Checkpoint::open(o.out);
  for (int l = 0; l < 4; ++l) {
    EXPECT_EQ(cfg.layers[size_t(l)].attn, l % 2 == 1 ? AttnKind::MLA : AttnKind::Lightning) << l;
    if (cfg.layers[size_t(l)].attn != AttnKind::Lightning) continue;
    const std::string p = "model.layers." + std::to_string(l) + ".attention.";
    const std::vector<float> a = in.get(p + "query_key_value.weight").to_f32();
    const std::vector<float> b = out.get(p + "query_key_value.weight").to_f32();
    const int64_t H = 64, d = 16, nh = 4, nkv = 2;
    ASSERT_EQ(b.size(), size_t(3 * nh * d * H));
    for (int64_t part = 0; part < 3; ++part)
      for (int64_t h = 0; h < nh; ++h)
        for (int64_t x = 0; x < d * H; ++x) {
          const int64_t src_row = part == 0 ? h * d : (nh + (part - 1) * nkv + h / (nh / nkv)) * d;
          ASSERT_EQ(b[size_t((part * nh + h) * d * H + x)], a[size_t(src_row * H + x)]) << l << " " << part << " " << h;
        }
    EXPECT_EQ(out.get(p + "query_layernorm.weight").to_f32(), in.get(p + "query_layernorm.weight").to_f32());
    for (float g : out.get(p + "g_proj.weight").to_f32()) ASSERT_EQ(g, 0.0f);
  }
  std::vector<int32_t> ids{1, 2, 3, 4, 5, 6, 7, 8};
  for (float x : all_logits(o.out, ids, true)) ASSERT_TRUE(std::isfinite(x));
  std::filesystem::remove_all(src);
  std::filesystem::remove_all(o.out);
}

}  // namespace
}  // namespace ling::test
