// `ling bench --backend cpu` on a tiny synthetic model: the report is complete (every prefill length and
// decode batch, GEMM shapes with positive timings) and the perf rows reach the results store; `--tp N --ep M`
// gives one row per layout and batch with the all-reduce counts of the model, and bad layouts are refused.
// Not a timed test.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/shell.h"

namespace {

namespace fs = std::filesystem;

TEST(BenchCpu, ReportsEveryMeasurementAndStoresIt) {
  const fs::path dir = fs::temp_directory_path() / ("ling_bench_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string bin = LING_BINARY;
  const std::string model = (dir / "m").string(), db = (dir / "r.sqlite").string(), out = (dir / "b.json").string();
  ASSERT_EQ(std::system((bin + " --no-db synth --family ling-2.5 --preset tiny --out " + model + " > /dev/null").c_str()), 0);
  ASSERT_EQ(std::system((bin + " --db " + db + " bench " + model +
                         " --prefill 16,40 --batch 1,3 --steps 2 --reps 1 --json > " + out).c_str()), 0);
  std::ifstream in(out);
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("\"tokens\": 40"), std::string::npos) << text.substr(0, 400);
  EXPECT_NE(text.find("\"batch\": 3"), std::string::npos);
  EXPECT_NE(text.find("\"op\": \"mla.kv_b\""), std::string::npos);
  EXPECT_NE(text.find("\"op\": \"moe.expert.gate_up\""), std::string::npos);
  EXPECT_EQ(text.find("\"tokens_per_s\": 0"), std::string::npos);
  const std::string show = (dir / "show.txt").string();
  ASSERT_EQ(std::system((bin + " --db " + db + " db runs --command bench --json > " + show).c_str()), 0);
  std::ifstream s(show);
  const std::string runs((std::istreambuf_iterator<char>(s)), std::istreambuf_iterator<char>());
  EXPECT_NE(runs.find("\"perf\": "), std::string::npos);
  EXPECT_EQ(runs.find("\"perf\": 0"), std::string::npos) << runs;
  EXPECT_NE(std::system((bin + " --no-db bench " + model + " --backend tpu 2> /dev/null").c_str()), 0);
  fs::remove_all(dir);
}

TEST(BenchCpu, TensorParallelScalingTable) {
  const fs::path dir = fs::temp_directory_path() / ("ling_bench_tp_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string bin = LING_BINARY, model = (dir / "m").string();
  ASSERT_EQ(std::system((bin + " --no-db synth --family ling-2.5 --preset tiny --out " + model + " > /dev/null").c_str()), 0);
  const auto r = ling::test::sh(bin + " --no-db bench " + model + " --tp 4 --ep 2 --batch 1,2 --steps 2 --context 8 --json");
  ASSERT_EQ(r.rc, 0) << r.text;
  const auto j = nlohmann::json::parse(r.text.substr(r.text.find('{')));
  const auto cfg = nlohmann::json::parse(std::ifstream(model + "/config.json"));
  const int64_t layers = cfg.at("num_hidden_layers").get<int64_t>();
  const std::vector<std::pair<int64_t, int64_t>> layouts = {{1, 1}, {2, 2}, {4, 2}};
  ASSERT_EQ(j.at("rows").size(), layouts.size() * 2);
  size_t i = 0;
  for (const auto& [tp, ep] : layouts)
    for (int64_t b : {1, 2}) {
      const auto& row = j.at("rows")[i++];
      EXPECT_EQ(row.at("tp").get<int64_t>(), tp);
      EXPECT_EQ(row.at("ep").get<int64_t>(), ep);
      EXPECT_EQ(row.at("batch").get<int64_t>(), b);
      EXPECT_GT(row.at("tokens_per_s").get<double>(), 0.0);
      EXPECT_NEAR(row.at("tokens_per_s_per_rank").get<double>() * double(tp), row.at("tokens_per_s").get<double>(), 1e-6);
      // One all-reduce after each attention and each FFN block of every layer, none without ranks.
      EXPECT_EQ(row.at("all_reduces_per_step").get<int64_t>(), tp == 1 ? 0 : 2 * layers);
      const double share = row.at("comm_share").get<double>();
      EXPECT_GE(share, 0.0);
      EXPECT_LT(share, 1.0);
      if (tp == 1) {
        EXPECT_EQ(share, 0.0);
      }
    }
  const auto heads = ling::test::sh(bin + " --no-db bench " + model + " --tp 3 --steps 1 --context 4");
  EXPECT_NE(heads.rc, 0);
  EXPECT_NE(heads.text.find("not divisible by --tp 3"), std::string::npos) << heads.text;
  const auto ep = ling::test::sh(bin + " --no-db bench " + model + " --tp 4 --ep 3 --steps 1 --context 4");
  EXPECT_NE(ep.rc, 0);
  EXPECT_NE(ep.text.find("--ep 3 must divide --tp 4"), std::string::npos) << ep.text;
  fs::remove_all(dir);
}

}  // namespace
