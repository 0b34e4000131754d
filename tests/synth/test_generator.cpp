// The counter-based generator reproduces every value of both golden fixtures' model.safetensors (made by the
// official HF code's driver with the rule of fixtures/*/README.md step 2, seed 1234): each tensor is re-made
// from its name and compared bit for bit. The file is parsed here directly (8-byte length, JSON header, data)
// so that this test depends only on the generator. Also checks the generator's moments and slice independence.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ling/synth/generator.h"

namespace {

using json = nlohmann::json;

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

void check_fixture(const std::string& dir, size_t expected_tensors) {
  std::string path = std::string(LING_SHARED_DIR) + "/fixtures/" + dir + "/model.safetensors";
  std::ifstream f(path, std::ios::binary);
  ASSERT_TRUE(f.good()) << path;
  std::stringstream ss;
  ss << f.rdbuf();
  const std::string bytes = ss.str();
  ASSERT_GT(bytes.size(), 8u);
  uint64_t n = 0;
  std::memcpy(&n, bytes.data(), 8);
  json header = json::parse(bytes.substr(8, n));
  const char* data = bytes.data() + 8 + n;
  size_t tensors = 0, values = 0;
  for (auto it = header.begin(); it != header.end(); ++it) {
    if (it.key() == "__metadata__") continue;
    const std::string& name = it.key();
    ASSERT_EQ(it.value()["dtype"], "F32") << name;
    std::vector<int64_t> shape = it.value()["shape"].get<std::vector<int64_t>>();
    uint64_t begin = it.value()["data_offsets"][0], end = it.value()["data_offsets"][1];
    double mean = 0, sd = 0;
    if (ends_with(name, "layernorm.weight") || ends_with(name, "g_norm.weight") || name == "model.norm.weight") {
      mean = 1.0; sd = 0.1;
    } else if (ends_with(name, "mlp.gate.expert_bias")) {
      sd = 0.5;
    } else if (ends_with(name, "mlp.gate.weight")) {
      sd = 0.5 / std::sqrt(static_cast<double>(shape.at(1)));
    } else {
      ASSERT_EQ(shape.size(), 2u) << name;
      sd = 1.0 / std::sqrt(static_cast<double>(shape[1]));
    }
    size_t count = (end - begin) / 4;
    std::vector<float> want(count), got(count);
    std::memcpy(want.data(), data + begin, count * 4);
    ling::synth::NormalStream gen(name, 1234, mean, sd);
    gen.fill(got.data(), 0, count);
    for (size_t i = 0; i < count; ++i)
      ASSERT_EQ(std::memcmp(&got[i], &want[i], 4), 0) << name << "[" << i << "]: " << got[i] << " vs " << want[i];
    ++tensors;
    values += count;
  }
  EXPECT_EQ(tensors, expected_tensors);
  EXPECT_GT(values, 4000000u);
}

TEST(SynthGenerator, ReproducesLing25TinyFixture) { check_fixture("ling25-tiny", 443); }
TEST(SynthGenerator, ReproducesLing20TinyFixture) { check_fixture("ling20-tiny", 189); }

TEST(SynthGenerator, MomentsAndSlices) {
  ling::synth::NormalStream g("x", 7, 0.0, 1.0);
  const size_t n = 200000;
  double s = 0, s2 = 0, mx = 0;
  for (size_t i = 0; i < n; ++i) {
    double z = g.z(i);
    s += z;
    s2 += z * z;
    mx = std::max(mx, std::fabs(z));
  }
  EXPECT_NEAR(s / n, 0.0, 0.01);
  EXPECT_NEAR(s2 / n, 1.0, 0.02);
  EXPECT_LE(mx, 2.0 * std::sqrt(3.0));
  std::vector<float> all(1000), part(300);
  g.fill(all.data(), 0, 1000);
  g.fill(part.data(), 500, 300);
  EXPECT_EQ(std::memcmp(all.data() + 500, part.data(), 300 * 4), 0);
  // Different names and seeds give different streams.
  EXPECT_NE(ling::synth::NormalStream("x", 8, 0, 1).z(0), g.z(0));
  EXPECT_NE(ling::synth::NormalStream("y", 7, 0, 1).z(0), g.z(0));
  EXPECT_EQ(ling::synth::fnv1a64(""), 0xcbf29ce484222325ull);
  EXPECT_EQ(ling::synth::fnv1a64("a"), 0xaf63dc4c8601ec8cull);  // published FNV-1a test vector
}

}  // namespace
