// `ling bench --backend cpu` on a tiny synthetic model: the report is complete (every prefill length and
// decode batch, GEMM shapes with positive timings) and the perf rows reach the results store. Not a timed test.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>

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

}  // namespace
