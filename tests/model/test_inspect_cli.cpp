// `ling inspect` through the binary: JSON fields of a bundled config, --check-weights on a fixture (clean) and
// on a broken copy (every problem listed, exit 1), and one error line for a bad path.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "ling/core/safetensors.h"

namespace ling {
namespace {

namespace fs = std::filesystem;

struct Result {
  int code;
  std::string out, err;
};

Result run(const std::string& args) {
  const fs::path tmp = fs::temp_directory_path() / ("ling_inspect_cli_" + std::to_string(::getpid()));
  const std::string cmd = std::string(LING_BINARY) + " --no-db inspect " + args + " > " + tmp.string() + ".out 2> " +
                          tmp.string() + ".err";
  int status = std::system(cmd.c_str());
  auto slurp = [](const std::string& p) {
    std::ifstream f(p);
    return std::string((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  };
  Result r{WEXITSTATUS(status), slurp(tmp.string() + ".out"), slurp(tmp.string() + ".err")};
  fs::remove(tmp.string() + ".out");
  fs::remove(tmp.string() + ".err");
  return r;
}

TEST(InspectCli, JsonOfLing25) {
  Result r = run(std::string(LING_SOURCE_DIR) + "/configs/ling-2.5-1t --json --context 4K,256K");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  const auto& m = j["models"][0];
  EXPECT_EQ(m["num_layers"], 80);
  EXPECT_EQ(m["layers"][7]["attention"], "mla");
  EXPECT_EQ(m["layers"][6]["attention"], "lightning");
  EXPECT_EQ(m["layers"][3]["ffn"], "dense");
  EXPECT_EQ(m["kv_cache_bytes_per_token"], 11520);
  EXPECT_EQ(m["linear_state_bytes_per_sequence"], 293601280);
  EXPECT_EQ(m["params"]["active"], 63580258816LL);
  EXPECT_EQ(m["memory"][1]["context"], 262144);
  EXPECT_EQ(m["memory"][1]["kv_cache_bytes"], 11520LL * 262144);
  EXPECT_EQ(m["layer_map"], "LLLLLLLM ×10");
}

TEST(InspectCli, CheckWeightsCleanFixture) {
  Result r = run(std::string(LING_SHARED_DIR) + "/fixtures/ling25-tiny --check-weights --scan-values --json");
  ASSERT_EQ(r.code, 0) << r.err;
  auto j = nlohmann::json::parse(r.out);
  EXPECT_TRUE(j["models"][0]["weights"]["ok"].get<bool>());
}

TEST(InspectCli, CheckWeightsListsEveryProblem) {
  // A copy of ling20-tiny's weights with one tensor dropped, one reshaped, one NaN and one extra.
  const std::string src = std::string(LING_SHARED_DIR) + "/fixtures/ling20-tiny";
  const fs::path dir = fs::temp_directory_path() / ("ling_broken_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  fs::copy_file(src + "/config.json", dir / "config.json");
  {
    Checkpoint ck = Checkpoint::open(src);
    std::map<std::string, HostTensor> out;
    for (const auto& name : ck.names()) {
      if (name == "model.norm.weight") continue;  // missing
      const TensorInfo& t = ck.get(name);
      std::vector<float> v = t.to_f32();
      std::vector<int64_t> shape = t.shape;
      if (name == "lm_head.weight") shape = {shape[1], shape[0]};  // wrong shape
      if (name == "model.layers.0.input_layernorm.weight") v[3] = std::nanf("");
      out[name] = HostTensor::from_f32(shape, v.data());
    }
    float one = 1;
    out["model.layers.0.attention.extra.weight"] = HostTensor::from_f32({1}, &one);
    write_safetensors((dir / "model.safetensors").string(), out);
  }
  Result r = run(dir.string() + " --check-weights --scan-values");
  EXPECT_EQ(r.code, 1);
  EXPECT_NE(r.out.find("model.norm.weight: missing tensor"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("lm_head.weight: shape [256, 1024] != expected [1024, 256]"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("model.layers.0.input_layernorm.weight: 1 NaN and 0 Inf values"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("model.layers.0.attention.extra.weight: unexpected tensor"), std::string::npos) << r.out;
  fs::remove_all(dir);
}

TEST(InspectCli, BadPathIsOneErrorLine) {
  Result r = run("/nonexistent/model");
  EXPECT_NE(r.code, 0);
  EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << r.err;
  EXPECT_NE(r.err.find("/nonexistent/model: no such file"), std::string::npos) << r.err;
}

TEST(InspectCli, BadConfigIsOneErrorLine) {
  const fs::path dir = fs::temp_directory_path() / ("ling_badcfg_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "config.json") << R"({"model_type": "bailing_hybrid", "num_attention_heads": 6, "head_dim": 64, "group_norm_size": 5})";
  Result r = run(dir.string());
  EXPECT_NE(r.code, 0);
  EXPECT_NE(r.err.find("ling: error: "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("group_norm_size"), std::string::npos) << r.err;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace ling
