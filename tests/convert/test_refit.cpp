// Data refit of the output projections (lib/convert/refit.h, calib/refit.h): the ridge solution recovers an
// exactly representable projection and its error formula matches a direct evaluation; the host-side MLA
// attention core times `dense` equals the engine's attention output of a converted model element by element
// (so the refit sees exactly what the model computes); `ling convert --refit` end to end on the trained model
// lowers every layer's projection error and bad refit options get one error line and no output.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <random>

#include "common/shell.h"
#include "engine_cpu/tiny_model.h"
#include "ling/calib/refit.h"
#include "ling/convert/convert.h"
#include "ling/convert/refit.h"
#include "ling/engine/rope.h"

namespace ling::test {
namespace {

namespace fs = std::filesystem;
using convert::MatD;

TEST(Refit, RidgeProjectionRecoversAnExactlyRepresentableTarget) {
  const int64_t n = 300, m = 24, H = 10;
  std::mt19937 rng(17);
  std::normal_distribution<float> nd;
  std::vector<float> o(size_t(n * m)), W(size_t(H * m)), y(size_t(n * H), 0.0f);
  for (float& v : o) v = nd(rng);
  for (float& v : W) v = nd(rng);
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < H; ++i) {
      double s = 0;
      for (int64_t j = 0; j < m; ++j) s += double(W[size_t(i * m + j)]) * o[size_t(t * m + j)];
      y[size_t(t * H + i)] = float(s);
    }
  convert::ProjectionSums sums;
  sums.init(m, H);
  sums.add(o.data(), y.data(), 100);  // in two pieces: the sums are additive
  sums.add(o.data() + 100 * m, y.data() + 100 * H, n - 100);
  EXPECT_EQ(sums.tokens, double(n));
  const MatD got = convert::ridge_projection(sums, 1e-12);
  ASSERT_EQ(got.rows, H);
  ASSERT_EQ(got.cols, m);
  for (int64_t i = 0; i < H * m; ++i) EXPECT_NEAR(got.v[size_t(i)], W[size_t(i)], 1e-4) << "element " << i;
  EXPECT_NEAR(convert::projection_rel_error(sums, W.data(), H, m), 0.0, 1e-6);
  // The error formula against a direct sum for a wrong projection.
  std::vector<float> bad = W;
  for (float& v : bad) v *= 0.5f;
  double num = 0, den = 0;
  for (int64_t t = 0; t < n; ++t)
    for (int64_t i = 0; i < H; ++i) {
      double s = 0;
      for (int64_t j = 0; j < m; ++j) s += double(bad[size_t(i * m + j)]) * o[size_t(t * m + j)];
      const double yv = y[size_t(t * H + i)];
      num += (yv - s) * (yv - s);
      den += yv * yv;
    }
  EXPECT_NEAR(convert::projection_rel_error(sums, bad.data(), H, m), num / den, 1e-9);
  EXPECT_GT(num / den, 0.1);
  // A strong ridge shrinks the solution.
  const MatD shrunk = convert::ridge_projection(sums, 10.0);
  double a = 0, b = 0;
  for (int64_t i = 0; i < H * m; ++i) { a += shrunk.v[size_t(i)] * shrunk.v[size_t(i)]; b += double(W[size_t(i)]) * W[size_t(i)]; }
  EXPECT_LT(a, 0.5 * b);
  // A strong ridge toward a given projection keeps it; a weak one still finds the exact solution.
  const MatD kept = convert::ridge_projection(sums, 1e8, bad.data());
  for (int64_t i = 0; i < H * m; ++i) EXPECT_NEAR(kept.v[size_t(i)], bad[size_t(i)], 1e-4) << "element " << i;
  const MatD exact = convert::ridge_projection(sums, 1e-12, bad.data());
  for (int64_t i = 0; i < H * m; ++i) EXPECT_NEAR(exact.v[size_t(i)], W[size_t(i)], 1e-4) << "element " << i;
}

TEST(Refit, KeyRefitRecoversAnExactlyRepresentableKeyMapUpToTheSoftmaxShift) {
  const int64_t d = 5, r = 3, rows = 40;
  std::mt19937 rng(29);
  std::normal_distribution<double> nd;
  std::uniform_real_distribution<double> ud(0.05, 1.0);
  std::vector<double> W(static_cast<size_t>(d * r));
  for (double& v : W) v = nd(rng);
  convert::KeyRefitSums s;
  s.init(d, r);
  for (int64_t t = 0; t < rows; ++t) {
    const int64_t m = 2 + t % 7;
    std::vector<double> a(static_cast<size_t>(d)), c(static_cast<size_t>(m * r)), u(static_cast<size_t>(m)), p(static_cast<size_t>(m));
    for (double& v : a) v = nd(rng);
    for (double& v : c) v = nd(rng);
    const double shift = 10.0 * nd(rng);  // a per-row constant: softmax ignores it, so must the fit
    double z = 0;
    for (int64_t k = 0; k < m; ++k) {
      double l = shift;
      for (int64_t i = 0; i < d; ++i)
        for (int64_t j = 0; j < r; ++j) l += a[size_t(i)] * W[size_t(i * r + j)] * c[size_t(k * r + j)];
      u[size_t(k)] = l;
      z += (p[size_t(k)] = ud(rng));
    }
    for (double& v : p) v /= z;
    s.add_row(a.data(), c.data(), u.data(), p.data(), m);
  }
  EXPECT_EQ(s.rows, double(rows));
  const std::vector<double> g = convert::key_refit_normal(s);
  for (int64_t i = 0; i < d * r; ++i)
    for (int64_t j = 0; j < d * r; ++j) EXPECT_EQ(g[size_t(i * d * r + j)], g[size_t(j * d * r + i)]);
  const std::vector<double> got = convert::solve_key_refit(s, std::vector<double>(size_t(d * r), 0.0), 1e-12);
  for (int64_t i = 0; i < d * r; ++i) EXPECT_NEAR(got[size_t(i)], W[size_t(i)], 1e-6) << "element " << i;
  EXPECT_NEAR(convert::key_refit_rel_objective(s, W), 0.0, 1e-9);
  EXPECT_NEAR(convert::key_refit_rel_objective(s, std::vector<double>(size_t(d * r), 0.0)), 1.0, 1e-12);
  // A strong ridge keeps the solution at the starting point.
  const std::vector<double> w0(size_t(d * r), 0.25);
  const std::vector<double> held = convert::solve_key_refit(s, w0, 1e6);
  for (int64_t i = 0; i < d * r; ++i) EXPECT_NEAR(held[size_t(i)], 0.25, 1e-3);
}

class CaptureAll : public Observer {
 public:
  void on_f32(const std::string& name, const std::vector<int64_t>& shape, const float* data) override {
    int64_t k = 1;
    for (int64_t s : shape) k *= s;
    got[name].assign(data, data + k);
  }
  void on_i64(const std::string&, const std::vector<int64_t>&, const int64_t*) override {}
  std::map<std::string, std::vector<float>> got;
};

TEST(Refit, HostAttentionCoreTimesDenseIsTheEnginesAttentionOutput) {
  nlohmann::json j = nlohmann::json::parse(ling2_config());  // YaRN: the MLA softmax scale carries mscale²
  j["use_qk_norm"] = false;
  j["num_key_value_heads"] = 2;
  const std::string src = make_tiny_model("refit_core", j.dump(), 23);
  convert::ConvertOptions o;
  o.in = src;
  o.out = (fs::temp_directory_path() / ("ling_refit_core_out_" + std::to_string(::getpid()))).string();
  o.kv_lora_rank = 12;
  o.force = true;
  convert::convert_checkpoint(o);
  const ModelConfig cfg = load_config(o.out);
  Checkpoint ck = Checkpoint::open(o.out);
  const ModelWeights w = load_weights(cfg, ck);
  std::vector<int32_t> ids;
  for (int i = 0; i < 33; ++i) ids.push_back(int32_t((i * 29 + 3) % 96));
  auto eng = open_engine(o.out);
  CaptureAll cap;
  eng->prefill(*eng->new_sequence(), ids, false, &cap);
  const ref::RopeFreqs rf = ref::rope_freqs(rope_freq_params(cfg));
  const int64_t n = int64_t(ids.size()), H = cfg.hidden_size, m = cfg.num_attention_heads * cfg.v_head_dim;
  for (int64_t l = 0; l < cfg.num_hidden_layers; ++l) {
    const std::string pre = "blk." + std::to_string(l) + ".";
    const std::vector<float> core = calib::mla_attention_core(cfg, w.layers[size_t(l)], rf,
                                                              cap.got.at(pre + "attn_in").data(), n);
    ASSERT_EQ(int64_t(core.size()), n * m);
    const std::vector<float>& ref = cap.got.at(pre + "attn_out");
    const Mat& D = w.layers[size_t(l)].dense;
    size_t bad = 0;
    double worst = 0;
    for (int64_t t = 0; t < n; ++t)
      for (int64_t i = 0; i < H; ++i) {
        double s = 0;
        for (int64_t k = 0; k < m; ++k) s += double(D.v[size_t(i * m + k)]) * core[size_t(t * m + k)];
        const double e = std::fabs(s - ref[size_t(t * H + i)]) / (1.0 + std::fabs(ref[size_t(t * H + i)]));
        worst = std::max(worst, e);
        if (!(e <= 1e-4)) ++bad;
      }
    EXPECT_EQ(bad, 0u) << "layer " << l << ": worst " << worst;
  }
  fs::remove_all(src);
  fs::remove_all(o.out);
}

const std::string kLing = LING_BINARY;
const std::string kSrc = std::string(LING_SOURCE_DIR) + "/models/ling20-gqa-6m";
const std::string kText = std::string(LING_SOURCE_DIR) + "/eval/data/kjv-genesis-1-4.txt";

TEST(RefitCli, RefitLowersEveryLayersProjectionErrorAndBadOptionsFailCleanly) {
  const fs::path dir = fs::path(::testing::TempDir()) / ("ling_refit_cli_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string out = (dir / "mla").string();
  auto r = sh(kLing + " --no-db convert " + kSrc + " " + out + " --to mla --kv-lora-rank 32 --refit dense-residual"
              " --refit-data " + kText + " --refit-tokens 1024 --refit-seq-len 256");
  ASSERT_EQ(r.rc, 0) << r.text;
  const nlohmann::json rep = nlohmann::json::parse(std::ifstream(fs::path(out) / "conversion.json"));
  ASSERT_EQ(rep["refit"].size(), 6u);
  for (const auto& l : rep["refit"]) {
    EXPECT_EQ(l["tokens"].get<double>(), 1024.0);
    EXPECT_LT(l["rel_err_after"].get<double>(), l["rel_err_before"].get<double>()) << l.dump();
  }
  EXPECT_EQ(sh(kLing + " --no-db inspect --check-weights " + out).rc, 0);
  // Inputs, keys, temperatures, then the projection: layer 0 sees the source's own inputs (nothing to correct), later layers'
  // input error drops; every head's second-order KL objective drops on the calibration rows.
  const std::string out2 = (dir / "mla_keys").string();
  r = sh(kLing + " --no-db convert " + kSrc + " " + out2 + " --to mla --kv-lora-rank 16 --refit inputs+keys+temperature+dense"
         " --refit-data " + kText + " --refit-tokens 1024 --refit-seq-len 256 --refit-rows 8");
  ASSERT_EQ(r.rc, 0) << r.text;
  const nlohmann::json rep2 = nlohmann::json::parse(std::ifstream(fs::path(out2) / "conversion.json"));
  ASSERT_EQ(rep2["refit"].size(), 6u);
  for (const auto& l : rep2["refit"]) {
    if (l["layer"] == 0) {
      EXPECT_LT(l["inputs"]["rel_err_before"].get<double>(), 1e-9) << l.dump();
    } else {
      EXPECT_GT(l["inputs"]["rel_err_before"].get<double>(), 1e-3) << l.dump();
      EXPECT_LT(l["inputs"]["rel_err_after"].get<double>(), l["inputs"]["rel_err_before"].get<double>()) << l.dump();
    }
    ASSERT_EQ(l["temperature"].size(), 4u) << l.dump();
    for (const auto& t : l["temperature"]) {  // inside the KL grid 2^[−2, 2]
      EXPECT_GT(t.get<double>(), 0.25);
      EXPECT_LT(t.get<double>(), 4.0);
    }
    ASSERT_EQ(l["keys"].size(), 4u) << l.dump();
    for (const auto& h : l["keys"]) {
      EXPECT_EQ(h["rows"].get<double>(), 32.0);
      EXPECT_LT(h["rel_obj_after"].get<double>(), h["rel_obj_before"].get<double>()) << h.dump();
    }
    EXPECT_LT(l["rel_err_after"].get<double>(), l["rel_err_before"].get<double>()) << l.dump();
  }
  for (const auto& [args, what] : std::vector<std::pair<std::string, std::string>>{
           {"--refit dense", "--refit needs --refit-data"},
           {"--refit values --refit-data " + kText, "'values' is not a '+'-list"},
           {"--refit dense+keys --refit-data " + kText, "'dense+keys' is not a '+'-list"},
           {"--refit dense --refit-data " + kText + " --refit-tokens 100000", "--refit-tokens asks for 100000"},
           {"--refit-data " + kText, "--refit-data is given without --refit"}}) {
    const std::string bad = (dir / "bad").string();
    r = sh(kLing + " --no-db convert " + kSrc + " " + bad + " --to mla --kv-lora-rank 32 " + args);
    EXPECT_EQ(r.rc, 1) << r.text;
    EXPECT_NE(r.text.find(what), std::string::npos) << r.text;
    EXPECT_EQ(std::count(r.text.begin(), r.text.end(), '\n'), 1) << r.text;
    EXPECT_FALSE(fs::exists(bad));
    for (const auto& e : fs::directory_iterator(dir))
      EXPECT_EQ(e.path().filename().string().rfind("bad.tmp", 0), std::string::npos) << e.path();
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace ling::test
