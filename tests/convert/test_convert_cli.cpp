// `ling calibrate` and `ling convert` end to end through the binary on the trained GQA model
// (models/ling20-gqa-6m, calibration text eval/data/kjv-genesis-1-4.txt): the output folder loads, passes
// `ling inspect --check-weights`, runs with `ling run`, and the run is stored; bad input gets one error line,
// exit 1 and no output folder (nor a temporary one) — including a write that fails for lack of space.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "common/shell.h"
#include "ling/store/store.h"

namespace ling::test {
namespace {

namespace fs = std::filesystem;

const std::string kLing = LING_BINARY;
const std::string kSrc = std::string(LING_SOURCE_DIR) + "/models/ling20-gqa-6m";
const std::string kText = std::string(LING_SOURCE_DIR) + "/eval/data/kjv-genesis-1-4.txt";

class ConvertCli : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::path(::testing::TempDir()) / ("ling_convert_cli_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    calib_ = (dir_ / "calib.safetensors").string();
    const auto r = sh(kLing + " --db " + (dir_ / "db.sqlite").string() + " calibrate " + kSrc + " --data " + kText +
                      " --tokens 2048 --seq-len 256 --logit-rows 32 --out " + calib_);
    if (r.rc != 0) msg_ = r.text;
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  void SetUp() override { ASSERT_TRUE(msg_.empty()) << "ling calibrate failed: " << msg_; }

  // A failing command: exit 1, exactly one line, naming `what`, and nothing left under `out` or `out`.tmp.*.
  static void expect_clean_failure(const std::string& args, const std::string& what, const std::string& out,
                                   const std::string& prefix = "") {
    const auto r = sh(prefix + kLing + " --no-db " + args);
    EXPECT_EQ(r.rc, 1) << r.text;
    EXPECT_NE(r.text.find(what), std::string::npos) << r.text;
    EXPECT_EQ(std::count(r.text.begin(), r.text.end(), '\n'), 1) << r.text;
    EXPECT_FALSE(fs::exists(out)) << out;
    for (const auto& e : fs::directory_iterator(fs::path(out).parent_path()))
      EXPECT_EQ(e.path().filename().string().rfind(fs::path(out).filename().string() + ".tmp", 0), std::string::npos)
          << "left behind: " << e.path();
  }

  static inline fs::path dir_;
  static inline std::string calib_, msg_;
};

TEST_F(ConvertCli, ConvertedModelLoadsChecksRunsAndIsStored) {
  const std::string out = (dir_ / "mla32").string(), db = (dir_ / "db.sqlite").string();
  auto r = sh(kLing + " --db " + db + " convert " + kSrc + " " + out + " --to mla --kv-lora-rank 32 --calib " + calib_);
  ASSERT_EQ(r.rc, 0) << r.text;
  for (const char* f : {"config.json", "model.safetensors", "conversion.json", "tokenizer.json"})
    EXPECT_TRUE(fs::exists(fs::path(out) / f)) << f;
  r = sh(kLing + " --no-db inspect --check-weights --scan-values " + out);
  EXPECT_EQ(r.rc, 0) << r.text;
  r = sh(kLing + " --no-db run " + out + " --prompt 'In the beginning' --max-new-tokens 4 --temperature 0");
  EXPECT_EQ(r.rc, 0) << r.text;
  const nlohmann::json rep = nlohmann::json::parse(std::ifstream(fs::path(out) / "conversion.json"));
  ASSERT_EQ(rep["layers"].size(), 6u);
  EXPECT_EQ(rep["kv_values_per_token_per_softmax_layer"]["after"], 64);
  for (const auto& l : rep["layers"]) {
    EXPECT_GT(l["latent_energy"].get<double>(), 0.3);
    EXPECT_LT(l["latent_energy"].get<double>(), 1.0);
  }
  auto st = Store::open(db);
  bool found = false;
  for (const auto& run : st->list_runs())
    if (run.command == "convert") {
      found = true;
      int n = 0;
      for (const auto& m : st->metrics(run.run_id))
        if (m.name == "latent_energy") ++n;
      EXPECT_EQ(n, 6);
    }
  EXPECT_TRUE(found);
}

TEST_F(ConvertCli, HybridOutputLoadsAndRuns) {
  const std::string out = (dir_ / "hybrid").string();
  auto r = sh(kLing + " --no-db convert " + kSrc + " " + out + " --to hybrid --layer-group-size 3 --kv-lora-rank 64 "
              "--q-lora-rank 128 --calib " + calib_);
  ASSERT_EQ(r.rc, 0) << r.text;
  r = sh(kLing + " --no-db inspect --check-weights " + out);
  EXPECT_EQ(r.rc, 0) << r.text;
  EXPECT_NE(r.text.find("LLM"), std::string::npos) << r.text;
  r = sh(kLing + " --no-db run " + out + " --prompt 'And God said' --max-new-tokens 3 --temperature 0");
  EXPECT_EQ(r.rc, 0) << r.text;
}

TEST_F(ConvertCli, BadInputGetsOneLineAndNoOutput) {
  const std::string out = (dir_ / "bad").string();
  expect_clean_failure("convert " + std::string(LING_SOURCE_DIR) + "/models/ling25-hybrid-6m " + out +
                           " --kv-lora-rank 32",
                       "already an MLA model", out);
  expect_clean_failure("convert " + kSrc + " " + out + " --kv-lora-rank 225 --calib " + calib_, "outside [1, 224]", out);
  expect_clean_failure("convert " + kSrc + " " + out + " --kv-lora-rank 0", "outside [1, 224]", out);
  expect_clean_failure("convert " + kSrc + " " + out + " --kv-lora-rank 32 --qk-method kl", "needs a calibration file",
                       out);
  // A calibration file of another model (a random ling-2.0 checkpoint of the same family).
  const std::string other = (dir_ / "other").string();
  ASSERT_EQ(sh(kLing + " --no-db synth --family ling-2.0 --preset tiny --out " + other).rc, 0);
  expect_clean_failure("convert " + other + " " + out + " --kv-lora-rank 16 --calib " + calib_, "another model", out);
  expect_clean_failure("convert " + kSrc + " " + out + " --kv-lora-rank 16 --calib " + kText, "kjv-genesis-1-4.txt: header size", out);
  // A write that runs out of space (file-size limit; SIGXFSZ ignored so that the write fails with EFBIG).
  expect_clean_failure("convert " + kSrc + " " + out + " --kv-lora-rank 32 --calib " + calib_, "File too large", out,
                       "ulimit -f 4000; trap '' XFSZ; ");
}

TEST_F(ConvertCli, ExistingOutputNeedsForce) {
  const std::string out = (dir_ / "exists").string();
  fs::create_directories(out);
  const auto r = sh(kLing + " --no-db convert " + kSrc + " " + out + " --kv-lora-rank 32 --calib " + calib_);
  EXPECT_EQ(r.rc, 1) << r.text;
  EXPECT_NE(r.text.find("--force"), std::string::npos) << r.text;
  EXPECT_TRUE(fs::is_empty(out));
}

}  // namespace
}  // namespace ling::test
