// Tensor / expert parallelism (ling/engine/tensor_parallel.h) over CPU rank backends: TP = 2, 4 and EP = 2, 4
// give TP = 1's logits (prefill of every position and greedy decode steps) within fp32 tolerance and the same
// router choices, on random checkpoints of all three families (GQA with nkv < tp, Lightning with biases and
// GroupRMSNorm, MLA with YaRN); plans that do not divide the model are one clear error.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>

#include "common/golden_io.h"
#include "engine_cpu/tiny_model.h"
#include "ling/engine/generate.h"
#include "ling/engine/tensor_parallel.h"
#include "ling/core/error.h"
#include "ling/ref/ops.h"

namespace ling::test {
namespace {

// Router ids of every MoE layer, in call order.
class RouterIds : public Observer {
 public:
  bool wants(const std::string& n) const override { return n.find("moe.topk_ids") != std::string::npos; }
  void on_f32(const std::string&, const std::vector<int64_t>&, const float*) override {}
  void on_i64(const std::string&, const std::vector<int64_t>& shape, const int64_t* d) override {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    ids.insert(ids.end(), d, d + n);
  }
  std::vector<int64_t> ids;
};

struct RunOut {
  std::vector<float> logits;
  std::vector<int64_t> router, tokens;
};

RunOut run_model(Engine& e) {
  std::vector<int32_t> prompt;
  for (int i = 0; i < 19; ++i) prompt.push_back(int32_t((i * 31 + 7) % 80));
  RunOut r;
  RouterIds obs;
  auto seq = e.new_sequence();
  r.logits = e.prefill(*seq, prompt, true, &obs);
  const int64_t V = e.config().vocab_size;
  for (int step = 0; step < 4; ++step) {
    const float* last = r.logits.data() + (int64_t(r.logits.size()) / V - 1) * V;
    const int64_t next = ref::argmax(last, V);
    r.tokens.push_back(next);
    std::vector<float> lg = e.decode({seq.get()}, {int32_t(next)}, &obs);
    r.logits.insert(r.logits.end(), lg.begin(), lg.end());
  }
  r.router = obs.ids;
  return r;
}

// owned: the engine gets the only reference to the weights (Backend::load_owned: the TP backend slices layer by
// layer and frees the full layers); otherwise a shared const copy (Backend::load).
std::unique_ptr<Engine> tp_engine(const std::string& dir, const TpPlan& p, bool owned = true) {
  ModelConfig cfg = load_config(dir);
  Checkpoint ck = Checkpoint::open(dir);
  auto be = make_tp_backend(p, BackendOptions{}, [](int64_t, const BackendOptions& o) { return make_cpu_backend(o); });
  if (owned) return std::make_unique<Engine>(std::move(cfg), std::make_shared<ModelWeights>(load_weights(cfg, ck)),
                                             std::move(be));
  auto w = std::make_shared<const ModelWeights>(load_weights(cfg, ck));
  return std::make_unique<Engine>(std::move(cfg), std::move(w), std::move(be));
}

// Lightning + MLA with GroupRMSNorm groups of 2 heads: at TP 4 each group spans two ranks.
std::string ling25_gn2_config() {
  std::string c = ling25_config();
  const size_t at = c.find("\"group_norm_size\": 4");
  c.replace(at, std::string("\"group_norm_size\": 4").size(), "\"group_norm_size\": 2");
  return c;
}

struct Case {
  const char* name;
  std::string (*config)();
  std::vector<TpPlan> plans;
};

class TensorParallel : public ::testing::TestWithParam<Case> {};

TEST_P(TensorParallel, MatchesOneRank) {
  const Case& c = GetParam();
  const std::string dir = make_tiny_model(std::string("tp_") + c.name, c.config(), 21);
  const RunOut ref1 = run_model(*open_engine(dir));
  for (const TpPlan& p : c.plans) {
    const RunOut got = run_model(*tp_engine(dir, p));
    const std::string tag = std::string(c.name) + " tp" + std::to_string(p.tp) + " ep" + std::to_string(p.ep);
    ASSERT_EQ(got.logits.size(), ref1.logits.size()) << tag;
    size_t bad = 0;
    double worst = 0;
    for (size_t i = 0; i < got.logits.size(); ++i) {
      const double e = std::fabs(double(got.logits[i]) - ref1.logits[i]);
      worst = std::max(worst, e);
      if (e > 1e-5 + 1e-4 * std::fabs(double(ref1.logits[i]))) ++bad;
    }
    EXPECT_EQ(bad, 0u) << tag << ": worst abs error " << worst;
    EXPECT_EQ(got.router, ref1.router) << tag;
    EXPECT_EQ(got.tokens, ref1.tokens) << tag;
  }
  std::filesystem::remove_all(dir);
}

INSTANTIATE_TEST_SUITE_P(
    Families, TensorParallel,
    ::testing::Values(Case{"ling2", ling2_config, {{2, 1}, {2, 2}, {4, 1}, {4, 2}, {4, 4}}},
                      Case{"ring_linear", ring_linear_config, {{2, 1}, {2, 2}, {4, 1}, {4, 2}}},
                      Case{"ling25_gn2", ling25_gn2_config, {{4, 1}, {4, 4}}},
                      Case{"ling25", ling25_config, {{2, 1}, {2, 2}, {4, 1}, {4, 4}}}),
    [](const auto& info) { return std::string(info.param.name); });

// The official-code fixtures through TP = 2 / EP = 2: the golden decode ids, every prompt logit and the router
// choices of every layer (as sets, as the golden tests compare them).
TEST(TensorParallelGolden, FixturesThroughTwoRanks) {
  for (const char* name : {"ling20-tiny", "ling25-tiny"}) {
    const std::string dir = fixture(name);
    auto g = SafetensorsFile::open(dir + "/golden.safetensors");
    EngineOptions eo;
    eo.tp = 2;
    eo.ep = 2;
    auto engine = Engine::open(dir, eo);
    GenerateOptions o;
    o.max_new_tokens = 16;
    o.collect_hidden = true;
    const auto t = generate(*engine, input_ids(*g), o).tensors();
    EXPECT_EQ(t.at("decode_ids").i64, i64_of(*g->find("decode_ids"))) << name;
    const std::vector<float> lg = g->find("logits")->to_f32();
    const auto& got = t.at("logits").f32;
    ASSERT_EQ(got.size(), lg.size());
    size_t bad = 0;
    for (size_t i = 0; i < lg.size(); ++i) bad += std::fabs(got[i] - lg[i]) > 1e-4 + 1e-4 * std::fabs(lg[i]);
    EXPECT_EQ(bad, 0u) << name;
    int routers = 0;
    for (const auto& [n, d] : t) {
      if (n.rfind("router_topk_", 0) != 0) continue;
      const TensorInfo* r = g->find(n);
      ASSERT_TRUE(r) << n;
      const std::vector<int64_t> rv = i64_of(*r);
      const int64_t k = d.shape.back();
      for (size_t row = 0; row * size_t(k) < rv.size(); ++row) {
        std::vector<int64_t> a(d.i64.begin() + row * k, d.i64.begin() + (row + 1) * k);
        std::vector<int64_t> b(rv.begin() + row * k, rv.begin() + (row + 1) * k);
        std::sort(a.begin(), a.end());
        std::sort(b.begin(), b.end());
        ASSERT_EQ(a, b) << name << " " << n << " row " << row;
      }
      ++routers;
    }
    EXPECT_GT(routers, 0) << name;
  }
}

// A rank process reads only its experts (load_weights with keep_expert): its slice equals the slice of the
// fully loaded model, and the other experts stay empty.
// DP attention (attention replicated, each sequence's caches on one rank, FFN still split): three sequences of
// different lengths prefilled together then decoded together give TP 1's logits, for all three families.
TEST(TensorParallelDp, SequencesSpreadOverRanksMatchOneRank) {
  for (auto [name, config] : std::vector<std::pair<const char*, std::string (*)()>>{
           {"ling2", ling2_config}, {"ring_linear", ring_linear_config}, {"ling25", ling25_config}}) {
    const std::string dir = make_tiny_model(std::string("tp_dp_") + name, config(), 31);
    auto run_batch = [&](Engine& e) {
      std::vector<std::unique_ptr<Sequence>> seqs;
      std::vector<Sequence*> ptrs;
      std::vector<std::vector<int32_t>> prompts;
      for (int i = 0; i < 3; ++i) {
        seqs.push_back(e.new_sequence());
        ptrs.push_back(seqs.back().get());
        std::vector<int32_t> p;
        for (int t = 0; t < 5 + 6 * i; ++t) p.push_back(int32_t((t * 13 + i * 7 + 1) % 80));
        prompts.push_back(p);
      }
      std::vector<float> out = e.forward(ptrs, prompts, true);
      for (int step = 0; step < 3; ++step) {
        std::vector<float> d = e.decode(ptrs, {int32_t(3 + step), int32_t(9 + step), int32_t(27 + step)});
        out.insert(out.end(), d.begin(), d.end());
      }
      return out;
    };
    const std::vector<float> ref1 = run_batch(*open_engine(dir));
    for (int64_t tp : {2, 4}) {
      ModelConfig cfg = load_config(dir);
      Checkpoint ck = Checkpoint::open(dir);
      auto w = std::make_shared<const ModelWeights>(load_weights(cfg, ck));
      TpPlan p{tp, 1};
      p.dp_attention = true;
      if (cfg.intermediate_size % tp != 0) continue;
      Engine e(std::move(cfg), std::move(w),
               make_tp_backend(p, BackendOptions{}, [](int64_t, const BackendOptions& o) { return make_cpu_backend(o); }));
      const std::vector<float> got = run_batch(e);
      ASSERT_EQ(got.size(), ref1.size()) << name;
      size_t bad = 0;
      for (size_t i = 0; i < got.size(); ++i) bad += std::fabs(got[i] - ref1[i]) > 1e-5 + 1e-4 * std::fabs(ref1[i]);
      EXPECT_EQ(bad, 0u) << name << " dp tp" << tp;
    }
    std::filesystem::remove_all(dir);
  }
}

TEST(TensorParallelLoad, RankReadsOnlyItsExperts) {
  const std::string dir = make_tiny_model("tp_load", ling25_config(), 5);
  const ModelConfig cfg = load_config(dir);
  Checkpoint ck = Checkpoint::open(dir);
  const ModelWeights full = load_weights(cfg, ck);
  for (TpPlan p : {TpPlan{2, 2}, TpPlan{4, 2}, TpPlan{4, 4}})
    for (int64_t r = 0; r < p.tp; ++r) {
      const auto [first, count] = rank_experts(cfg, p, r);
      const ModelWeights part =
          load_weights(cfg, ck, [first = first, count = count](int64_t e) { return e >= first && e < first + count; });
      const RankModel a = slice_for_rank(cfg, full, p, r, {}), b = slice_for_rank(cfg, part, p, r, {});
      for (size_t l = 0; l < full.layers.size(); ++l) {
        ASSERT_EQ(a.weights->layers[l].experts.size(), b.weights->layers[l].experts.size());
        for (size_t e = 0; e < full.layers[l].experts.size(); ++e) {
          const bool mine = int64_t(e) >= first && int64_t(e) < first + count;
          EXPECT_EQ(part.layers[l].experts[e].gate_up.empty(), !mine && full.layers[l].spec.ffn == FfnKind::MoE);
          EXPECT_EQ(a.weights->layers[l].experts[e].gate_up.v, b.weights->layers[l].experts[e].gate_up.v);
          EXPECT_EQ(a.weights->layers[l].experts[e].down.v, b.weights->layers[l].experts[e].down.v);
        }
      }
    }
  std::filesystem::remove_all(dir);
}

// slice_for_ranks (layer by layer, freeing the full model as it goes) and a RankSlicer fed by
// load_weights_streamed (Engine::open's path for TP) give every rank exactly the tensors of slice_for_rank, for
// TP / EP plans and DP attention; the full model is left empty; engines loaded by the owned and the shared path
// compute the same logits bit for bit.
TEST(TensorParallelLoad, LayerByLayerSlicingEqualsRankByRank) {
  const std::string dir = make_tiny_model("tp_consume", ling25_config(), 9);
  const ModelConfig cfg = load_config(dir);
  Checkpoint ck = Checkpoint::open(dir);
  const ModelWeights full = load_weights(cfg, ck);
  const std::vector<Mat LayerWeights::*> fields = {
      &LayerWeights::input_norm, &LayerWeights::post_norm, &LayerWeights::qkv, &LayerWeights::qkv_bias,
      &LayerWeights::q_norm, &LayerWeights::k_norm, &LayerWeights::g_proj, &LayerWeights::g_norm,
      &LayerWeights::dense, &LayerWeights::dense_bias, &LayerWeights::q_a, &LayerWeights::q_a_bias,
      &LayerWeights::q_a_norm, &LayerWeights::q_b, &LayerWeights::q_proj, &LayerWeights::q_proj_bias,
      &LayerWeights::kv_a, &LayerWeights::kv_a_bias, &LayerWeights::kv_a_norm, &LayerWeights::kv_b,
      &LayerWeights::gate_up, &LayerWeights::down, &LayerWeights::router, &LayerWeights::router_bias};
  auto same = [](const Mat& a, const Mat& b) { return a.rows == b.rows && a.cols == b.cols && a.v == b.v; };
  for (TpPlan p : {TpPlan{2, 1}, TpPlan{4, 2}, TpPlan{4, 4}, TpPlan{2, 1, false, true}}) {
    ModelWeights taken = full;
    const std::vector<int64_t> ranks = p.tp == 4 ? std::vector<int64_t>{0, 1, 2, 3} : std::vector<int64_t>{1, 0};
    const std::vector<RankModel> from_model = slice_for_ranks(cfg, taken, p, ranks, {});
    RankSlicer slicer(cfg, p, ranks, {});  // straight from the checkpoint, as Engine::open loads TP backends
    int64_t streamed_layers = 0;
    const ModelWeights globals = load_weights_streamed(cfg, ck, {}, [&](LayerWeights&& L) {
      EXPECT_EQ(L.spec.index, streamed_layers++);
      slicer.add_layer(std::move(L));
    });
    EXPECT_EQ(streamed_layers, cfg.num_hidden_layers);
    EXPECT_TRUE(globals.layers.empty());
    const std::vector<RankModel> from_ckpt = slicer.finish(globals);
    for (const std::vector<RankModel>* gotp : {&from_model, &from_ckpt}) {
    const std::vector<RankModel>& got = *gotp;
    ASSERT_EQ(got.size(), ranks.size());
    for (size_t i = 0; i < ranks.size(); ++i) {
      const RankModel want = slice_for_rank(cfg, full, p, ranks[i], {});
      const std::string tag = "tp" + std::to_string(p.tp) + " ep" + std::to_string(p.ep) +
                              (p.dp_attention ? " dp" : "") + " rank " + std::to_string(ranks[i]);
      EXPECT_EQ(got[i].config.num_attention_heads, want.config.num_attention_heads) << tag;
      EXPECT_EQ(got[i].options.head_offset, want.options.head_offset) << tag;
      EXPECT_TRUE(same(got[i].weights->embed, want.weights->embed) && same(got[i].weights->norm, want.weights->norm) &&
                  same(got[i].weights->lm_head, want.weights->lm_head)) << tag;
      ASSERT_EQ(got[i].weights->layers.size(), want.weights->layers.size()) << tag;
      for (size_t l = 0; l < full.layers.size(); ++l) {
        const LayerWeights &a = got[i].weights->layers[l], &b = want.weights->layers[l];
        for (Mat LayerWeights::*f : fields) EXPECT_TRUE(same(a.*f, b.*f)) << tag << " layer " << l;
        ASSERT_EQ(a.experts.size(), b.experts.size()) << tag;
        for (size_t e = 0; e < a.experts.size(); ++e)
          EXPECT_TRUE(same(a.experts[e].gate_up, b.experts[e].gate_up) && same(a.experts[e].down, b.experts[e].down))
              << tag << " layer " << l << " expert " << e;
        EXPECT_TRUE(same(a.shared.gate_up, b.shared.gate_up) && same(a.shared.down, b.shared.down)) << tag;
      }
    }
    }
    EXPECT_TRUE(taken.embed.empty() && taken.lm_head.empty());
    for (const LayerWeights& L : taken.layers)
      EXPECT_TRUE(L.qkv.empty() && L.dense.empty() && L.q_b.empty() && L.kv_b.empty() && L.gate_up.empty() &&
                  L.experts.empty() && L.shared.gate_up.empty());
  }
  const TpPlan p{2, 2};
  const RunOut owned = run_model(*tp_engine(dir, p, true)), shared = run_model(*tp_engine(dir, p, false));
  EXPECT_EQ(owned.logits, shared.logits);
  EXPECT_EQ(owned.tokens, shared.tokens);
  std::filesystem::remove_all(dir);
}

TEST(TensorParallelPlan, PlansThatDoNotDivideTheModelAreOneError) {
  const std::string dir = make_tiny_model("tp_bad", ring_linear_config(), 3);
  ModelConfig cfg = load_config(dir);
  EXPECT_THROW(check_tp_plan(cfg, TpPlan{3, 1}), Error);  // 4 heads
  EXPECT_THROW(check_tp_plan(cfg, TpPlan{2, 4}), Error);  // ep does not divide tp
  EXPECT_THROW(check_tp_plan(cfg, TpPlan{4, 4}), Error);  // 6 experts over 4 groups
  try {
    check_tp_plan(cfg, TpPlan{3, 1});
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("num_attention_heads 4"), std::string::npos) << e.what();
  }
  EXPECT_THROW(tp_engine(dir, TpPlan{3, 1}), Error);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ling::test
