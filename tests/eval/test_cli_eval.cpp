// End to end through the `ling` binary (LING_BINARY) on `ling synth --family ling-2.5 --preset tiny` models in
// a temp folder, CPU backend: every task runs and reports metrics; prompts built with the synth tokenizer have
// exactly the requested length and are stable for a seed; KLD of a model against itself is 0 with 100% top-1
// agreement and large against a model with another seed.
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <csignal>
#include <sstream>
#include <string>

#include "common/shell.h"
#include "ling/eval/adapters.h"
#include "ling/eval/tasks.h"
#include "ling/eval/util.h"

namespace fs = std::filesystem;
using namespace ling::eval;

namespace {

using ling::test::sh;

const std::string kLing = LING_BINARY;

class CliEval : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = fs::path(::testing::TempDir()) / ("ling_cli_eval_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    for (int seed : {1, 2}) {
      auto r = sh(kLing + " --no-db synth --family ling-2.5 --preset tiny --seed " + std::to_string(seed) +
                  " --out " + m(seed));
      if (r.rc != 0) msg_ += r.text;
    }
  }
  static void TearDownTestSuite() { fs::remove_all(dir_); }
  void SetUp() override { ASSERT_TRUE(msg_.empty()) << "ling synth failed: " << msg_; }

  static nlohmann::json eval(const std::string& args) {
    auto r = sh(kLing + " --no-db eval " + args + " --json");
    EXPECT_EQ(r.rc, 0) << r.text;
    if (r.rc != 0) return nlohmann::json::array();
    auto at = r.text.find('[');
    return nlohmann::json::parse(r.text.substr(at == std::string::npos ? 0 : at));
  }
  static double metric(const nlohmann::json& rows, const std::string& task, const std::string& name,
                       const std::string& bucket = "") {
    for (const auto& r : rows)
      if (r["task"] == task && r["name"] == name && r["bucket"] == bucket) return r["value"].get<double>();
    ADD_FAILURE() << "no metric " << task << "/" << name << "@" << bucket;
    return NAN;
  }
  static std::string m(int seed) {
    std::string name = "m";
    name += std::to_string(seed);
    return (dir_ / name).string();
  }

  static fs::path dir_;
  static std::string msg_;
};
fs::path CliEval::dir_;
std::string CliEval::msg_;

}  // namespace

TEST_F(CliEval, SynthTokenizerPromptsAreExact) {
  ModelTokenizer tok(m(1));
  TaskOptions o;
  o.contexts = {1024, 1500};
  o.depths = {0, 100};
  o.samples = 1;
  o.seed = 3;
  for (const auto& name : task_names()) {
    if (name == "gsm8k") continue;
    auto a = make_task(name, o), b = make_task(name, o);
    for (int64_t i = 0; i < a->size(); ++i) {
      auto s = a->make(i, tok);
      if (s.context_tokens > 0) {
        ASSERT_EQ(int64_t(s.prompt.size()), s.context_tokens) << name;
      }
      EXPECT_EQ(sha256_ids(s.prompt), sha256_ids(b->make(i, tok).prompt)) << name;
    }
  }
}

TEST_F(CliEval, EveryTaskRunsOnCpu) {
  auto rows = eval(m(1) + " --task passkey,niah_single_1,niah_single_2,niah_single_3,niah_multikey_1,"
                          "niah_multikey_2,niah_multikey_3,niah_multivalue,niah_multiquery,vt,cwe,fwe "
                          "--contexts 1K --depths 0,100 --samples 1 --max-new-tokens 8 --seed 5");
  for (std::string t : {"passkey", "niah_single_1", "niah_multikey_3", "vt", "cwe", "fwe"}) {
    double v = metric(rows, t, "score");
    EXPECT_GE(v, 0);
    EXPECT_LE(v, 100);
    metric(rows, t, "score", "ctx=1024");
  }
  metric(rows, "passkey", "score", "ctx=1024,depth=100");
  auto arith = eval(m(1) + " --task arith --samples 3 --max-new-tokens 16");
  metric(arith, "arith", "exact_match_strict");
  metric(arith, "arith", "exact_match_flexible");
  auto ppl = eval(m(1) + " --task ppl --ctx 128 --max-windows 3");
  double p = metric(ppl, "ppl", "ppl");
  EXPECT_GT(p, 1.0);
  EXPECT_GT(metric(ppl, "ppl", "bits_per_byte"), 0.0);
}

TEST_F(CliEval, KldSelfIsZeroOtherSeedIsLarge) {
  auto self = eval(m(1) + " --task kld --reference " + m(1) + " --ctx 128 --max-windows 2");
  EXPECT_EQ(metric(self, "kld", "kld_mean"), 0.0);
  EXPECT_EQ(metric(self, "kld", "kld_max"), 0.0);
  EXPECT_EQ(metric(self, "kld", "same_top_pct"), 100.0);
  EXPECT_EQ(metric(self, "kld", "ppl_ratio"), 1.0);
  auto other = eval(m(1) + " --task kld --reference " + m(2) + " --ctx 128 --max-windows 2");
  EXPECT_GT(metric(other, "kld", "kld_mean"), 0.1);
  EXPECT_LT(metric(other, "kld", "same_top_pct"), 50.0);
}

namespace {

// Metrics of a run as "task,name,bucket,value,stderr,n" lines (run id dropped).
std::string metric_lines(const std::string& db, const std::string& run) {
  auto r = sh(kLing + " --db " + db + " results export " + run + " --csv");
  EXPECT_EQ(r.rc, 0) << r.text;
  std::string out;
  std::istringstream in(r.text);
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) out += line.substr(line.find(',') + 1) + "\n";
  return out;
}

std::vector<std::string> run_ids(const std::string& db) {
  auto r = sh(kLing + " --db " + db + " results list");
  std::vector<std::string> ids;
  std::istringstream in(r.text);
  std::string line;
  std::getline(in, line);
  while (std::getline(in, line))
    if (line.size() > 36) ids.push_back(line.substr(0, 36));
  return ids;
}

int64_t stored_samples(const std::string& db, const std::string& run) {
  auto r = sh(kLing + " --db " + db + " results export " + run + " --json");
  if (r.rc != 0) return -1;
  auto j = nlohmann::json::parse(r.text);
  return static_cast<int64_t>(j["samples"].size());
}

}  // namespace

TEST_F(CliEval, KilledEvalResumesToTheSameMetrics) {
  const std::string args = " eval " + m(1) + " --task passkey,ppl --contexts 512,768 --depths 0,50,100 --samples 3 "
                           "--seed 9 --ctx 64 --max-windows 6 --batch 1";
  const std::string full_db = (dir_ / "full.sqlite").string(), db = (dir_ / "resume.sqlite").string();
  ASSERT_EQ(sh(kLing + " --db " + full_db + args).rc, 0);
  auto full_ids = run_ids(full_db);
  ASSERT_EQ(full_ids.size(), 1u);
  const std::string want = metric_lines(full_db, full_ids[0]);
  ASSERT_NE(want.find("passkey,score,\"ctx=768,depth=50\","), std::string::npos);
  ASSERT_NE(want.find("ppl,ppl,"), std::string::npos);

  // Start, wait until a few samples are stored, kill -9.
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    std::vector<std::string> argv = {kLing, "--db", db};
    std::istringstream words(args);
    for (std::string w; words >> w;) argv.push_back(w);
    std::vector<char*> cargv;
    for (auto& w : argv) cargv.push_back(w.data());
    cargv.push_back(nullptr);
    freopen("/dev/null", "w", stdout);
    freopen("/dev/null", "w", stderr);
    execv(kLing.c_str(), cargv.data());
    _exit(127);
  }
  std::string id;
  int64_t have = 0;
  for (int i = 0; i < 600 && have < 3; ++i) {
    usleep(20000);
    auto ids = run_ids(db);
    if (!ids.empty()) id = ids[0], have = stored_samples(db, id);
  }
  ::kill(pid, SIGKILL);  // exec'd directly (no shell in between), so this is the ling process
  waitpid(pid, nullptr, 0);
  ASSERT_FALSE(id.empty());
  const int64_t before = stored_samples(db, id);
  ASSERT_GE(before, 3);
  ASSERT_LT(before, 18 + 6) << "the eval finished before it was killed; nothing to resume";
  auto before_json = nlohmann::json::parse(sh(kLing + " --db " + db + " results export " + id + " --json").text);

  auto r = sh(kLing + " --db " + db + args + " --resume " + id.substr(0, 8));
  ASSERT_EQ(r.rc, 0) << r.text;
  EXPECT_EQ(metric_lines(db, id), want);
  auto after_json = nlohmann::json::parse(sh(kLing + " --db " + db + " results export " + id + " --json").text);
  EXPECT_EQ(after_json["samples"].size(), 24u);
  // Samples stored before the kill were not recomputed (their timings are unchanged).
  for (const auto& s : before_json["samples"]) {
    bool found = false;
    for (const auto& t : after_json["samples"])
      if (t["task"] == s["task"] && t["idx"] == s["idx"]) {
        found = true;
        EXPECT_EQ(t["prefill_ms"], s["prefill_ms"]);
        EXPECT_EQ(t["prompt_sha256"], s["prompt_sha256"]);
      }
    EXPECT_TRUE(found);
  }
  EXPECT_EQ(after_json["run"]["status"], "ok");
}

TEST_F(CliEval, TwoEvalsOnOneDatabase) {
  const std::string db = (dir_ / "shared.sqlite").string();
  // Created first: two processes creating a brand-new database at the same instant is a separate (store) case.
  ASSERT_EQ(sh(kLing + " --db " + db + " results list").rc, 0);
  const std::string a = kLing + " --db " + db + " eval " + m(1) + " --task passkey --contexts 256 --depths 0,100 "
                        "--samples 3 --batch 1";
  const std::string b = kLing + " --db " + db + " eval " + m(2) + " --task niah_single_1 --contexts 256 "
                        "--depths 0,100 --samples 3 --batch 1";
  auto r = sh("(" + a + " > " + db + ".a.log 2>&1; echo $? > " + db + ".a.rc) & (" + b + " > " + db +
              ".b.log 2>&1; echo $? > " + db + ".b.rc) & wait");
  ASSERT_EQ(r.rc, 0);
  EXPECT_EQ(sh("cat " + db + ".a.rc").text, "0\n") << sh("cat " + db + ".a.log").text;
  EXPECT_EQ(sh("cat " + db + ".b.rc").text, "0\n") << sh("cat " + db + ".b.log").text;
  auto ids = run_ids(db);
  ASSERT_EQ(ids.size(), 2u);
  for (const auto& id : ids) {
    EXPECT_EQ(stored_samples(db, id), 6);
    EXPECT_NE(metric_lines(db, id).find(",score,\"ctx=256,depth=100\","), std::string::npos);
  }
  // Both runs in one plot: two depth x length heatmaps and a score-vs-length panel, labelled axes.
  const std::string svg = (dir_ / "both.svg").string();
  auto p = sh(kLing + " --db " + db + " results plot " + ids[0] + " " + ids[1] + " --out " + svg);
  ASSERT_EQ(p.rc, 0) << p.text;
  std::ifstream f(svg);
  std::string text((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text.rfind("<?xml", 0), 0u);
  EXPECT_NE(text.find("needle depth (%)"), std::string::npos);
  EXPECT_NE(text.find("context length (tokens"), std::string::npos);
  EXPECT_EQ(text.substr(text.size() - 7), "</svg>\n");
  auto c = sh(kLing + " --db " + db + " results compare " + ids[0] + " " + ids[1]);
  EXPECT_EQ(c.rc, 0) << c.text;
  EXPECT_NE(c.text.find("passkey"), std::string::npos);
  EXPECT_NE(c.text.find("niah_single_1"), std::string::npos);
}
