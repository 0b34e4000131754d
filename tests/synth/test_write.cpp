// `ling synth` end to end (lib/synth write_synth and the CLI): the tiny ling-2.5 and ling-2.0 presets with
// seed 1234 rebuild the golden fixtures' model.safetensors byte for byte (header and data); every family's
// output opens as a Checkpoint whose tensors are exactly tensor_schema(load_config(out)); sharding writes a
// valid index with the same bytes per tensor; bf16 is the rounded f32; the folder appears atomically.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ling/core/error.h"
#include "ling/core/safetensors.h"
#include "ling/model/config.h"
#include "ling/model/schema.h"
#include "ling/synth/synth.h"
#include "ling/tokenizer/chat.h"
#include "ling/tokenizer/tokenizer.h"

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& tag) {
    path = fs::temp_directory_path() / ("ling_synth_" + tag + "_" + std::to_string(::getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

std::string slurp(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

ling::synth::SynthOptions opts(const std::string& family, const std::string& preset, const fs::path& out) {
  ling::synth::SynthOptions o;
  o.family = family;
  o.preset = preset;
  o.seed = 1234;
  o.out = out.string();
  return o;
}

void expect_fixture_bytes(const std::string& family, const std::string& fixture, const fs::path& dir) {
  const fs::path fix = fs::path(LING_SHARED_DIR) / "fixtures" / fixture;
  const std::string want = slurp(fix / "model.safetensors");
  ASSERT_GT(want.size(), 1000000u);
  // From the preset, and from the fixture's own config.json.
  for (const std::string& preset : {std::string("tiny"), (fix / "config.json").string()}) {
    fs::path out = dir / (family + (preset == "tiny" ? "-preset" : "-config"));
    ling::synth::SynthOptions o = opts(preset == "tiny" ? family : "", preset, out);
    ling::synth::SynthResult r = ling::synth::write_synth(o);
    EXPECT_EQ(r.shards, 1);
    const std::string got = slurp(out / "model.safetensors");
    ASSERT_EQ(got.size(), want.size()) << preset;
    EXPECT_TRUE(got == want) << preset << ": model.safetensors differs from " << fix / "model.safetensors";
  }
}

TEST(SynthWrite, RebuildsLing25TinyFixture) {
  TempDir d("fix25");
  expect_fixture_bytes("ling-2.5", "ling25-tiny", d.path);
}

TEST(SynthWrite, RebuildsLing20TinyFixture) {
  TempDir d("fix20");
  expect_fixture_bytes("ling-2.0", "ling20-tiny", d.path);
}

void expect_schema(const fs::path& out, ling::DType dtype) {
  ling::ModelConfig cfg = ling::load_config(out.string());
  ling::Checkpoint ck = ling::Checkpoint::open(out.string());
  std::vector<std::string> want_names;
  for (const ling::TensorSpec& s : ling::tensor_schema(cfg, true)) {
    if (!s.required) continue;
    want_names.push_back(s.name);
    const ling::TensorInfo* t = ck.find(s.name);
    ASSERT_NE(t, nullptr) << out << ": missing " << s.name;
    EXPECT_EQ(t->shape, s.shape) << s.name;
    EXPECT_EQ(t->dtype, dtype) << s.name;
  }
  std::sort(want_names.begin(), want_names.end());
  EXPECT_EQ(ck.names(), want_names) << out;
  ling::Tokenizer tok = ling::Tokenizer::load(out.string());
  EXPECT_LE(tok.vocab_size(), cfg.vocab_size);
  ling::ChatTemplate ct = ling::ChatTemplate::load(out.string(), tok);
  EXPECT_EQ(ct.stop_ids().size(), 2u);
  EXPECT_TRUE(ct.is_stop(static_cast<int32_t>(cfg.eos_token_ids.front())));
}

TEST(SynthWrite, EveryFamilyMatchesItsSchema) {
  TempDir d("schema");
  for (const std::string family : {"ling-2.0", "ring-linear", "ling-2.5"}) {
    for (const std::string dtype : {"f32", "bf16"}) {
      ling::synth::SynthOptions o = opts(family, "tiny", d.path / (family + dtype));
      o.dtype = dtype;
      o.layers = family == "ring-linear" ? 5 : 0;  // 4 Lightning + 1 GQA, plus a trailing softmax layer
      ling::synth::write_synth(o);
      expect_schema(o.out, dtype == "f32" ? ling::DType::F32 : ling::DType::BF16);
    }
  }
}

TEST(SynthWrite, ShardsAndBf16) {
  TempDir d("shards");
  ling::synth::SynthOptions one = opts("ring-linear", "tiny", d.path / "one");
  one.dtype = "f32";
  ling::synth::write_synth(one);
  ling::synth::SynthOptions many = one;
  many.out = (d.path / "many").string();
  many.shard_size = 3u << 20;
  ling::synth::SynthResult r = ling::synth::write_synth(many);
  EXPECT_GT(r.shards, 3);
  EXPECT_FALSE(fs::exists(fs::path(many.out) / "model.safetensors"));
  json index = json::parse(slurp(fs::path(many.out) / "model.safetensors.index.json"));
  EXPECT_EQ(index["metadata"]["total_size"].get<uint64_t>(), r.bytes);
  ling::Checkpoint a = ling::Checkpoint::open(one.out), b = ling::Checkpoint::open(many.out);
  ASSERT_EQ(a.names(), b.names());
  for (const std::string& name : a.names()) {
    const ling::TensorInfo &x = a.get(name), &y = b.get(name);
    ASSERT_EQ(x.nbytes(), y.nbytes()) << name;
    EXPECT_EQ(std::memcmp(x.data, y.data, x.nbytes()), 0) << name;
    EXPECT_EQ(index["weight_map"][name].get<std::string>(), fs::path(y.file).filename().string()) << name;
    EXPECT_LE(y.nbytes(), many.shard_size);
  }
  ling::synth::SynthOptions half = one;
  half.out = (d.path / "bf16").string();
  half.dtype = "bf16";
  ling::synth::write_synth(half);
  ling::Checkpoint c = ling::Checkpoint::open(half.out);
  for (const std::string& name : a.names()) {
    std::vector<float> f = a.get(name).to_f32(), h = c.get(name).to_f32();
    ASSERT_EQ(f.size(), h.size());
    for (size_t i = 0; i < f.size(); ++i) ASSERT_EQ(h[i], ling::round_bf16(f[i])) << name << "[" << i << "]";
  }
}

TEST(SynthWrite, AtomicFolderAndErrors) {
  TempDir d("atomic");
  ling::synth::SynthOptions o = opts("ling-2.0", "tiny", d.path / "m");
  ling::synth::write_synth(o);
  EXPECT_THROW(ling::synth::write_synth(o), ling::Error);  // exists, no --force
  o.force = true;
  o.seed = 99;
  ling::synth::write_synth(o);
  size_t entries = 0;
  for (auto& e : fs::directory_iterator(d.path)) { (void)e; ++entries; }
  EXPECT_EQ(entries, 1u) << "temporary or old folders left behind";
  o.out = (d.path / "bad").string();
  o.vocab = 100;  // too small for the byte-level tokenizer: fails after the temp folder exists
  EXPECT_THROW(ling::synth::write_synth(o), ling::Error);
  EXPECT_FALSE(fs::exists(d.path / "bad"));
  entries = 0;
  for (auto& e : fs::directory_iterator(d.path)) { (void)e; ++entries; }
  EXPECT_EQ(entries, 1u);
}

TEST(SynthWrite, Cli) {
  TempDir d("cli");
  std::string cmd = std::string(LING_BINARY) + " --no-db synth --family ling-2.5 --preset tiny --layers 4 --json --out " +
                    (d.path / "m").string() + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof(buf), p)) out.append(buf, n);
  ASSERT_EQ(::pclose(p), 0) << out;
  json j = json::parse(out);
  EXPECT_EQ(j["shards"], 1);
  EXPECT_GT(j["parameters"].get<int64_t>(), 1000000);
  expect_schema(d.path / "m", ling::DType::F32);
}

}  // namespace
