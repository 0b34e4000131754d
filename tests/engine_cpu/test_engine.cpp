// Engine on the CPU backend with small random checkpoints of all three families (awkward settings: nkv 1, YaRN,
// fkd 0/2, trailing partial groups, group_norm_size, q_lora_rank null, biases): cached decode equals one full
// forward, split prefill equals one prefill, a batch of sequences equals the sequences run alone, absorbed MLA
// decode equals the expanded form, and the loader / input checks raise one clear error.
#include <gtest/gtest.h>

#include <tuple>

#include <cmath>
#include <limits>

#include "common/compare.h"
#include "ling/core/error.h"
#include "ling/engine/generate.h"
#include "ling/ref/ops.h"
#include "tiny_model.h"

namespace ling::test {
namespace {

std::vector<int32_t> ids(int64_t n, int64_t vocab, uint32_t seed) {
  std::mt19937 g(seed);
  std::vector<int32_t> v(static_cast<size_t>(n));
  for (auto& x : v) x = int32_t(g() % uint32_t(vocab));
  return v;
}

std::vector<float> rows(const std::vector<float>& m, int64_t V, int64_t r0, int64_t n) {
  return std::vector<float>(m.begin() + r0 * V, m.begin() + (r0 + n) * V);
}

struct Family {
  const char* name;
  std::string (*config)();
};
class EngineFamilies : public ::testing::TestWithParam<Family> {};

// Prefill T, then N cached decode steps == one forward over T + N (logits of the last N + 1 positions).
TEST_P(EngineFamilies, CachedDecodeEqualsFullForward) {
  const std::string dir = make_tiny_model(GetParam().name, GetParam().config());
  BackendOptions bo;
  bo.lightning_chunk = 8;  // several chunks and a partial one
  auto eng = open_engine(dir, bo);
  const int64_t V = eng->config().vocab_size, T = 21, N = 6;
  const auto all = ids(T + N, V, 3);
  auto s1 = eng->new_sequence();
  std::vector<float> got = eng->prefill(*s1, std::vector<int32_t>(all.begin(), all.begin() + T));
  for (int64_t i = 0; i < N; ++i) {
    const auto lg = eng->decode({s1.get()}, {all[T + i]});
    got.insert(got.end(), lg.begin(), lg.end());
  }
  EXPECT_EQ(s1->length(), T + N);
  auto s2 = eng->new_sequence();
  const std::vector<float> full = eng->prefill(*s2, all, /*all_logits=*/true);
  EXPECT_TRUE(all_close("decode vs full", got, rows(full, V, T - 1, N + 1), tol(1e-5, 1e-5, 1e-10)));
}

// Two prefill calls (10 + 17 tokens) == one prefill of 27 (continuation through every cache kind).
TEST_P(EngineFamilies, SplitPrefillEqualsOnePrefill) {
  const std::string dir = make_tiny_model(std::string(GetParam().name) + "_split", GetParam().config(), 11);
  BackendOptions bo;
  bo.lightning_chunk = 4;
  auto eng = open_engine(dir, bo);
  const int64_t V = eng->config().vocab_size;
  const auto all = ids(27, V, 5);
  auto s1 = eng->new_sequence();
  std::vector<float> a = eng->prefill(*s1, std::vector<int32_t>(all.begin(), all.begin() + 10), true);
  const std::vector<float> b = eng->prefill(*s1, std::vector<int32_t>(all.begin() + 10, all.end()), true);
  a.insert(a.end(), b.begin(), b.end());
  auto s2 = eng->new_sequence();
  EXPECT_TRUE(all_close("split prefill", a, eng->prefill(*s2, all, true), tol(1e-5, 1e-5, 1e-10)));
}

// Sequences of different lengths in one batch (prefill, then batched decode) == each run alone.
TEST_P(EngineFamilies, BatchEqualsSequencesAlone) {
  const std::string dir = make_tiny_model(std::string(GetParam().name) + "_batch", GetParam().config(), 13);
  auto eng = open_engine(dir);
  const int64_t V = eng->config().vocab_size;
  const std::vector<std::vector<int32_t>> prompts = {ids(5, V, 1), ids(17, V, 2), ids(11, V, 3)};
  const std::vector<int32_t> next = {1, 2, 3};
  std::vector<std::unique_ptr<Sequence>> seqs;
  std::vector<Sequence*> ptrs;
  for (size_t i = 0; i < prompts.size(); ++i) {
    seqs.push_back(eng->new_sequence());
    ptrs.push_back(seqs.back().get());
  }
  const std::vector<float> pre = eng->forward(ptrs, prompts, false);
  const std::vector<float> dec = eng->decode(ptrs, next);
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto s = eng->new_sequence();
    const auto p = eng->prefill(*s, prompts[i]);
    const auto d = eng->decode({s.get()}, {next[i]});
    EXPECT_TRUE(all_close("batched prefill " + std::to_string(i), rows(pre, V, int64_t(i), 1), p, tol(1e-5, 1e-5, 1e-10)));
    EXPECT_TRUE(all_close("batched decode " + std::to_string(i), rows(dec, V, int64_t(i), 1), d, tol(1e-5, 1e-5, 1e-10)));
  }
}

INSTANTIATE_TEST_SUITE_P(All, EngineFamilies,
                         ::testing::Values(Family{"ling2", ling2_config}, Family{"ring_linear", ring_linear_config},
                                           Family{"ling25", ling25_config}),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(EngineMla, AbsorbedDecodeEqualsExpanded) {
  const std::string dir = make_tiny_model("mla_absorb", ling25_config(), 17);
  BackendOptions absorbed, expanded;
  expanded.mla_absorbed_decode = false;
  auto e1 = open_engine(dir, absorbed), e2 = open_engine(dir, expanded);
  const auto p = ids(19, e1->config().vocab_size, 9);
  auto s1 = e1->new_sequence(), s2 = e2->new_sequence();
  e1->prefill(*s1, p);
  e2->prefill(*s2, p);
  for (int32_t t : {4, 8, 15}) {
    EXPECT_TRUE(all_close("absorbed", e1->decode({s1.get()}, {t}), e2->decode({s2.get()}, {t}), tol(1e-5, 1e-5, 1e-10)));
  }
}

TEST(EngineGenerate, ProtocolAndSeededSampling) {
  const std::string dir = make_tiny_model("generate", ring_linear_config(), 21);
  auto eng = open_engine(dir);
  const int64_t V = eng->config().vocab_size;
  const auto prompt = ids(9, V, 4);
  GenerateOptions g;
  g.max_new_tokens = 5;
  g.collect_hidden = true;
  const GenerateResult r = generate(*eng, prompt, g);
  ASSERT_EQ(r.decode_ids.size(), 5u);
  ASSERT_EQ(r.logits.size(), size_t(9 * V));
  ASSERT_EQ(r.decode_logits.size(), size_t(5 * V));
  EXPECT_EQ(r.decode_ids[0], ref::argmax(r.logits.data() + 8 * V, V));
  for (int64_t i = 0; i + 1 < 5; ++i) EXPECT_EQ(r.decode_ids[i + 1], ref::argmax(r.decode_logits.data() + i * V, V));
  const auto t = r.tensors();
  for (const char* name : {"logits", "decode_ids", "decode_logits", "final_norm", "hidden_0", "hidden_4",
                           "router_topk_2", "router_weight_4"})
    EXPECT_TRUE(t.count(name)) << name;
  EXPECT_FALSE(t.count("router_topk_1"));  // dense FFN layer (first_k_dense_replace 2)
  EXPECT_EQ(t.at("router_topk_2").shape, (std::vector<int64_t>{9, 2}));
  // Seeded sampling reproduces itself; another seed gives another continuation (over 12 tokens).
  g.temperature = 1.5f;
  g.max_new_tokens = 12;
  g.collect_hidden = false;
  g.seed = 5;
  const auto a = generate(*eng, prompt, g).decode_ids, b = generate(*eng, prompt, g).decode_ids;
  EXPECT_EQ(a, b);
  g.seed = 6;
  EXPECT_NE(generate(*eng, prompt, g).decode_ids, a);
  // Picks where the logits are (Engine::forward_pick; on the CPU the host path) follow the same draws: the same
  // ids as picking from the kept logits, for greedy and sampled settings; no logits are kept.
  for (const auto& [T, top_k, top_p] : {std::tuple{0.0f, 0, 1.0f}, {1.5f, 0, 1.0f}, {0.8f, 3, 0.9f}, {1.2f, 0, 0.4f}}) {
    g.temperature = T, g.top_k = top_k, g.top_p = top_p, g.seed = 9;
    g.keep_logits = true;
    const GenerateResult kept = generate(*eng, prompt, g);
    g.keep_logits = false;
    const GenerateResult picked = generate(*eng, prompt, g);
    EXPECT_EQ(kept.decode_ids, picked.decode_ids) << "T=" << T << " top_k=" << top_k << " top_p=" << top_p;
    EXPECT_TRUE(picked.logits.empty() && picked.decode_logits.empty());
  }
}

TEST(EngineDecay, VariantIsSelectable) {
  const std::string dir = make_tiny_model("decay", ling25_config(), 23);
  const auto prompt = ids(12, 89, 8);
  std::vector<std::vector<float>> out;
  for (const char* v : {"", "hf", "engine"}) {
    EngineOptions o;
    o.decay = v;
    auto eng = Engine::open(dir, o);
    auto s = eng->new_sequence();
    out.push_back(eng->prefill(*s, prompt));
  }
  EXPECT_EQ(out[0], out[1]);  // hf is the default
  EXPECT_FALSE(all_close("decay", out[2], out[0], tol(1e-6, 1e-6)));
  EngineOptions bad;
  bad.decay = "sideways";
  EXPECT_THROW(Engine::open(dir, bad), Error);
}

// An FP8 weight with a 128x128 block scale loads as fp8 value × scale: same logits as the f32 checkpoint holding
// the dequantised values; a scale of the wrong shape is an error naming it.
TEST(EngineWeights, Fp8BlockScaledWeights) {
  const std::string a = make_tiny_model("fp8_src", ling2_config(), 29);
  const std::string target = "model.layers.1.mlp.experts.3.gate_proj.weight";
  Checkpoint src = Checkpoint::open(a);
  std::map<std::string, HostTensor> f32, f8;
  for (const std::string& n : src.names()) {
    const TensorInfo& t = src.get(n);
    f32[n] = f8[n] = HostTensor::from_f32(t.shape, t.to_f32().data());
  }
  const TensorInfo& t = src.get(target);
  HostTensor q;
  q.dtype = DType::F8_E4M3;
  q.shape = t.shape;
  std::vector<float> deq;
  for (int64_t i = 0; i < t.numel(); ++i) {
    const uint8_t b = uint8_t(((i * 37 + 5) % 0x7E) | (i % 3 == 0 ? 0x80 : 0));  // never the NaN codes 0x7F/0xFF
    q.bytes.push_back(std::byte(b));
    deq.push_back(fp8_e4m3_to_f32(b) * 0.0125f);
  }
  f8[target] = q;
  const float sc = 0.0125f;
  f8[target + "_scale_inv"] = HostTensor::from_f32({1, 1}, &sc);
  f32[target] = HostTensor::from_f32(t.shape, deq.data());
  auto write_model = [&](const std::string& tag, const std::map<std::string, HostTensor>& ts) {
    const std::string dir = make_tiny_model(tag, ling2_config(), 29);
    write_safetensors(dir + "/model.safetensors", ts);
    return dir;
  };
  auto e8 = open_engine(write_model("fp8_q", f8)), e32 = open_engine(write_model("fp8_f", f32));
  const auto p = ids(14, 97, 2);
  auto s8 = e8->new_sequence(), s32 = e32->new_sequence();
  EXPECT_EQ(e8->prefill(*s8, p, true), e32->prefill(*s32, p, true));
  f8[target + "_scale_inv"] = HostTensor::from_f32({1}, &sc);
  try {
    open_engine(write_model("fp8_bad", f8));
    FAIL() << "no error for a scale of the wrong shape";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(target + "_scale_inv"), std::string::npos) << e.what();
  }
}

TEST(EngineErrors, BadTokensAndLength) {
  const std::string dir = make_tiny_model("errors_ids", ling2_config());
  auto eng = open_engine(dir);
  auto s = eng->new_sequence();
  try {
    eng->prefill(*s, {1, 2, 97});
    FAIL() << "no error for an id outside the vocabulary";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("97"), std::string::npos) << e.what();
  }
  EXPECT_EQ(s->length(), 0);
  EXPECT_THROW(eng->prefill(*s, {-1}), Error);
  EXPECT_THROW(eng->prefill(*s, std::vector<int32_t>(129, 1)), Error);  // max_position_embeddings 128
  eng->prefill(*s, std::vector<int32_t>(128, 1));
  EXPECT_THROW(eng->decode({s.get()}, {1}), Error);
}

std::string load_error(const std::string& tag, const TensorEdit& edit, const std::map<std::string, HostTensor>& extra = {}) {
  const std::string dir = make_tiny_model(tag, ling25_config(), 3, edit, extra);
  try {
    open_engine(dir);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(EngineErrors, LoaderNamesTheTensor) {
  const std::string nan_name = "model.layers.1.attention.g_proj.weight";
  std::string msg = load_error("nan", [&](const std::string& n, std::vector<int64_t>&, std::vector<float>& v) {
    if (n == nan_name) v[5] = std::numeric_limits<float>::quiet_NaN();
  });
  EXPECT_NE(msg.find(nan_name), std::string::npos) << msg;
  msg = load_error("inf", [&](const std::string& n, std::vector<int64_t>&, std::vector<float>& v) {
    if (n == "lm_head.weight") v[0] = std::numeric_limits<float>::infinity();
  });
  EXPECT_NE(msg.find("lm_head.weight"), std::string::npos) << msg;
  const std::string shape_name = "model.layers.2.attention.kv_b_proj.weight";
  msg = load_error("shape", [&](const std::string& n, std::vector<int64_t>& s, std::vector<float>& v) {
    if (n == shape_name) { s[0] -= 1; v.resize(size_t(s[0] * s[1])); }
  });
  EXPECT_NE(msg.find(shape_name), std::string::npos) << msg;
  const std::string gone = "model.layers.3.mlp.experts.5.down_proj.weight";
  msg = load_error("missing", [&](const std::string& n, std::vector<int64_t>& s, std::vector<float>& v) {
    if (n == gone) { s.clear(); v.clear(); }
  });
  EXPECT_NE(msg.find(gone), std::string::npos) << msg;
  const float one = 1.0f;
  msg = load_error("unexpected", {}, {{"model.layers.0.attention.bogus.weight", HostTensor::from_f32({1}, &one)}});
  EXPECT_NE(msg.find("bogus"), std::string::npos) << msg;
}

}  // namespace
}  // namespace ling::test
