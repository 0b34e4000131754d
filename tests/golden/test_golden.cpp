// Golden tests (label golden): the engine against the outputs of the official HF code for both fixtures
// (fixtures/ling20-tiny, fixtures/ling25-tiny; README "Decode protocol"). Every element of logits,
// decode_logits, hidden_L, final_norm and router_weight_L within atol 1e-4 + rtol 1e-4; decode_ids equal;
// router_topk_L equal as sets per token. Also the RoPE frequencies and Lightning log decays, and the same
// comparison through the `ling run --dump-hidden` binary.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <unistd.h>

#include "common/compare.h"
#include "common/golden_io.h"
#include "ling/core/safetensors.h"
#include "ling/engine/generate.h"
#include "ling/ref/ops.h"

namespace ling::test {
namespace {

const ref::CompareOptions kTol = tol(1e-4, 1e-4, 1e-9);


// Compare every produced tensor with the golden one of the same name; the produced set must cover every
// golden hidden_/router_/logits tensor.
void check_against_golden(const std::map<std::string, DumpTensor>& got, const SafetensorsFile& g) {
  for (const TensorInfo& t : g.tensors()) {
    const bool expected = t.name == "logits" || t.name == "decode_ids" || t.name == "decode_logits" ||
                          t.name == "final_norm" || t.name.rfind("hidden_", 0) == 0 || t.name.rfind("router_", 0) == 0;
    if (expected) {
      EXPECT_TRUE(got.count(t.name)) << "engine did not produce " << t.name;
    }
  }
  for (const auto& [name, d] : got) {
    const TensorInfo* t = g.find(name);
    ASSERT_TRUE(t) << "golden has no " << name;
    ASSERT_EQ(d.shape, t->shape) << name;
    if (d.is_int) {
      const bool sets = name.rfind("router_topk_", 0) == 0;
      EXPECT_TRUE(all_equal(name, d.shape, d.i64.data(), i64_of(*t).data(), sets));
    } else {
      EXPECT_TRUE(all_close(name, d.shape, d.f32.data(), t->to_f32().data(), kTol));
    }
  }
}

class Golden : public ::testing::TestWithParam<std::string> {};

TEST_P(Golden, EngineMatchesOfficialCode) {
  const std::string dir = fixture(GetParam());
  auto g = SafetensorsFile::open(dir + "/golden.safetensors");
  auto engine = Engine::open(dir);
  GenerateOptions o;
  o.max_new_tokens = 16;
  o.collect_hidden = true;
  const GenerateResult r = generate(*engine, input_ids(*g), o);
  check_against_golden(r.tensors(), *g);
}

TEST_P(Golden, RopeFrequenciesAndLightningDecays) {
  const std::string dir = fixture(GetParam());
  auto g = SafetensorsFile::open(dir + "/golden.safetensors");
  const ModelConfig c = load_config(dir);
  ref::RopeFreqParams fp;
  fp.rope_dim = c.rope_dim();
  fp.theta = c.rope_theta;
  const ref::RopeFreqs f = ref::rope_freqs(fp);
  for (const char* name : {"rope_inv_freq", "rope_inv_freq_mla"}) {
    const TensorInfo* t = g->find(name);
    if (!t) continue;
    EXPECT_TRUE(all_close(name, t->shape, f.inv_freq.data(), t->to_f32().data(), tol(1e-6, 0, 1e-12)));
  }
  const std::vector<double> slopes = lightning_slopes(c.num_attention_heads);
  int checked = 0;
  for (int64_t il = 0; il < c.num_hidden_layers; ++il) {
    const TensorInfo* t = g->find("lightning_slope_" + std::to_string(il));
    EXPECT_EQ(t != nullptr, c.layers[il].attn == AttnKind::Lightning) << "layer " << il;
    if (!t) continue;
    const auto dec = ref::lightning_log_decay(slopes, lightning_decay_factor(DecayVariant::HF, il, c.num_hidden_layers));
    EXPECT_TRUE(all_close("lightning_slope_" + std::to_string(il), t->shape, dec.data(), t->to_f32().data(),
                          tol(1e-6, 0, 1e-12)));
    ++checked;
  }
  if (c.has_lightning()) {
    EXPECT_GT(checked, 0);
  }
}

TEST_P(Golden, LingRunDumpMatches) {
  const std::string dir = fixture(GetParam());
  const std::string dump = (std::filesystem::temp_directory_path() /
                            ("ling_golden_" + GetParam() + "_" + std::to_string(::getpid()) + ".safetensors")).string();
  const std::string cmd = std::string(LING_BINARY) + " --no-db run " + dir + " --prompt-ids " + dir +
                          "/golden.safetensors --max-new-tokens 16 --temperature 0 --dump-hidden --dump " + dump +
                          " > /dev/null 2>&1";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  auto d = SafetensorsFile::open(dump);
  std::vector<std::string> names;
  for (const TensorInfo& t : d->tensors()) names.push_back(t.name);
  EXPECT_GE(names.size(), 5u);
  ref::CompareOptions o = kTol;
  o.as_sets = true;
  for (const ref::CompareReport& rep : ref::compare_files(dump, dir + "/golden.safetensors", o, names))
    EXPECT_TRUE(rep.ok) << rep.line();
  std::filesystem::remove(dump);
}

TEST(LingRun, BadInputIsOneLineAndNonZeroExit) {
  const std::string dir = fixture("ling20-tiny");
  const auto tmp = std::filesystem::temp_directory_path() / ("ling_badids_" + std::to_string(::getpid()));
  std::filesystem::create_directories(tmp);
  auto run_with = [&](const std::string& ids_text, std::string* err) {
    { std::ofstream(tmp / "ids.txt") << ids_text; }
    const std::string cmd = std::string(LING_BINARY) + " --no-db run " + dir + " --prompt-ids " + (tmp / "ids.txt").string() +
                            " --max-new-tokens 2 > /dev/null 2> " + (tmp / "err.txt").string();
    const int rc = std::system(cmd.c_str());
    std::ifstream in(tmp / "err.txt");
    err->assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    return rc;
  };
  std::string err;
  EXPECT_NE(run_with("1 2 1024", &err), 0);
  EXPECT_NE(err.find("1024"), std::string::npos) << err;
  EXPECT_EQ(std::count(err.begin(), err.end(), '\n'), 1) << err;
  EXPECT_NE(run_with("1 2 x3", &err), 0);
  EXPECT_NE(err.find("x3"), std::string::npos) << err;
  std::string many;
  for (int i = 0; i < 4097; ++i) many += "5 ";
  EXPECT_NE(run_with(many, &err), 0);
  EXPECT_NE(err.find("max_position_embeddings"), std::string::npos) << err;
  EXPECT_EQ(run_with("1 2 3", &err), 0) << err;
  std::filesystem::remove_all(tmp);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, Golden, ::testing::Values("ling20-tiny", "ling25-tiny"),
                         [](const auto& info) {
                           std::string n = info.param;
                           for (char& ch : n) if (ch == '-') ch = '_';
                           return n;
                         });

}  // namespace
}  // namespace ling::test
