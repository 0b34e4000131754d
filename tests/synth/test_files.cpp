// Config and tokenizer files of `ling synth` (lib/synth): every key of the published family configs
// (shared/configs) is present; the tiny presets equal the golden fixtures' configs on every shared key; the
// overrides keep the config consistent; the synthetic tokenizer.json loads with ling::Tokenizer, merges common
// words, round-trips text and places the special tokens and stop ids as documented.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "ling/core/error.h"
#include "ling/synth/synth.h"
#include "ling/tokenizer/chat.h"
#include "ling/tokenizer/tokenizer.h"

namespace {

using json = nlohmann::json;

json read_json(const std::string& path) {
  std::ifstream f(path);
  EXPECT_TRUE(f.good()) << path;
  return json::parse(f);
}

json config_for(const std::string& family, const std::string& preset, int64_t layers = 0, int64_t experts = 0) {
  ling::synth::SynthOptions o;
  o.family = family;
  o.preset = preset;
  o.layers = layers;
  o.experts = experts;
  return json::parse(ling::synth::make_config_json(o));
}

TEST(SynthFiles, ConfigsCarryEveryPublishedKey) {
  const std::string shared = LING_SHARED_DIR;
  const std::pair<const char*, const char*> pairs[] = {
      {"ling-2.0", "ling-mini-2.0"}, {"ring-linear", "ring-mini-linear-2.0"}, {"ling-2.5", "ling-2.5-1t"}};
  for (auto [family, model] : pairs) {
    json real = read_json(shared + "/configs/" + model + "/config.json");
    for (const char* preset : {"tiny", "small"}) {
      json mine = config_for(family, preset);
      for (auto it = real.begin(); it != real.end(); ++it) {
        if (it.key() == "transformers_version") continue;  // provenance, not a model key
        EXPECT_TRUE(mine.contains(it.key())) << family << " " << preset << ": missing key " << it.key();
      }
      EXPECT_EQ(mine["architectures"], real["architectures"]) << family;
      EXPECT_EQ(mine["model_type"], real["model_type"]) << family;
    }
  }
}

TEST(SynthFiles, TinyPresetsEqualTheFixtureConfigs) {
  const std::string shared = LING_SHARED_DIR;
  const std::pair<const char*, const char*> pairs[] = {{"ling-2.0", "ling20-tiny"}, {"ling-2.5", "ling25-tiny"}};
  for (auto [family, fixture] : pairs) {
    json fix = read_json(shared + "/fixtures/" + fixture + "/config.json");
    json mine = config_for(family, "tiny");
    int compared = 0;
    for (auto it = mine.begin(); it != mine.end(); ++it) {
      if (!fix.contains(it.key())) continue;
      EXPECT_EQ(it.value(), fix[it.key()]) << family << ": key " << it.key();
      ++compared;
    }
    EXPECT_GT(compared, 35) << family;
  }
}

TEST(SynthFiles, OverridesAndConfigPaths) {
  json j = config_for("ling-2.5", "small", 3, 6);
  EXPECT_EQ(j["num_hidden_layers"], 3);
  EXPECT_EQ(j["num_experts"], 6);
  EXPECT_EQ(j["num_experts_per_tok"], 4);
  EXPECT_EQ(j["n_group"], 1);  // 6 experts do not split into 4 groups
  EXPECT_EQ(j["topk_group"], 1);
  EXPECT_EQ(j["torch_dtype"], "bfloat16");
  ling::synth::SynthOptions o;
  o.preset = std::string(LING_SHARED_DIR) + "/configs/ling-2.5-1t/config.json";
  o.layers = 2;
  o.experts = 16;
  o.dtype = "f32";
  json c = json::parse(ling::synth::make_config_json(o));
  EXPECT_EQ(c["hidden_size"], 8192);
  EXPECT_EQ(c["num_hidden_layers"], 2);
  EXPECT_EQ(c["first_k_dense_replace"], 2);
  EXPECT_EQ(c["num_experts"], 16);
  EXPECT_EQ(c["n_group"], 8);
  EXPECT_EQ(c["torch_dtype"], "float32");
  o.family = "ling-2.0";
  EXPECT_THROW(ling::synth::make_config_json(o), ling::Error);  // family mismatch
  o.family = "";
  o.preset = "huge";
  EXPECT_THROW(ling::synth::make_config_json(o), ling::Error);
  EXPECT_EQ(ling::synth::parse_size("500M", "x"), 500ull << 20);
  EXPECT_EQ(ling::synth::parse_size("2G", "x"), 2ull << 30);
  EXPECT_EQ(ling::synth::parse_size("4096", "x"), 4096u);
  EXPECT_THROW(ling::synth::parse_size("3Q", "x"), ling::Error);
}

TEST(SynthFiles, TokenizerLoadsAndRoundTrips) {
  for (auto [vocab, eos] : {std::pair<int64_t, int64_t>{1024, 1023}, {157184, 156892}}) {
    ling::Tokenizer tok = ling::Tokenizer::from_json(ling::synth::make_tokenizer_json(vocab, eos), "synth/tokenizer.json");
    EXPECT_LE(tok.vocab_size(), vocab);
    EXPECT_EQ(tok.token_to_id("<|endoftext|>"), eos);
    auto role_end = tok.token_to_id("<|role_end|>");
    ASSERT_TRUE(role_end.has_value());
    EXPECT_EQ(*role_end, eos + 1 <= vocab - 5 ? eos + 1 : eos - 1);
    const std::string text = "the model said unto them: 12 tokens, 你好 🙂\n\n  return self.weight";
    std::vector<int32_t> ids = tok.encode(text);
    EXPECT_LT(ids.size(), text.size() * 3 / 4) << "merges should shorten English text";
    EXPECT_EQ(tok.decode(ids), text);
    EXPECT_EQ(tok.encode(" the"), (std::vector<int32_t>{*tok.token_to_id("\xC4\xA0the")}));
    // Single digits (Ling split).
    EXPECT_EQ(tok.encode("12"), (std::vector<int32_t>{'1', '2'}));
    std::vector<int32_t> chat = tok.encode("<role>HUMAN</role>hi<|role_end|>");
    EXPECT_EQ(chat.front(), *tok.token_to_id("<role>"));
    EXPECT_EQ(chat.back(), *role_end);
  }
  EXPECT_THROW(ling::synth::make_tokenizer_json(200, 199), ling::Error);
}

TEST(SynthFiles, StopIdsFromTheWrittenConfigs) {
  auto dir = std::filesystem::temp_directory_path() / ("ling_synth_files_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << ling::synth::make_tokenizer_json(1024, 1023);
  std::ofstream(dir / "generation_config.json") << ling::synth::make_generation_config_json(1023);
  std::ofstream(dir / "tokenizer_config.json") << ling::synth::make_tokenizer_config_json(1023, 4096);
  ling::Tokenizer tok = ling::Tokenizer::load(dir.string());
  ling::ChatTemplate ct = ling::ChatTemplate::load(dir.string(), tok);
  EXPECT_EQ(ct.stop_ids(), (std::vector<int32_t>{1022, 1023}));
  std::filesystem::remove_all(dir);
}

}  // namespace
