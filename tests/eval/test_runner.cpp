// Runner: scripted answers give the expected per-bucket scores; an interrupted run resumed from the same
// sink ends with the same metrics as an uninterrupted one and recomputes no stored sample; text tasks too.
#include <gtest/gtest.h>

#include <map>

#include "fakes.h"
#include "ling/core/error.h"
#include "ling/eval/runner.h"

using namespace ling::eval;
using ling::eval::test::BigramModel;
using ling::eval::test::FakeTokenizer;
using ling::eval::test::ScriptedModel;

namespace {

class TestSink : public ResultSink {
 public:
  void begin_task(const TaskInfo& t) override { task_ = t.name + "|" + t.params_json; }
  std::vector<SampleRecord> stored_samples() override {
    std::vector<SampleRecord> out;
    for (auto& [k, s] : samples_)
      if (k.first == task_) out.push_back(s);
    return out;
  }
  void put_sample(const SampleRecord& s) override {
    if (fail_after_ >= 0 && puts_ >= fail_after_) throw ling::Error("simulated interruption");
    ++puts_;
    samples_[{task_, s.idx}] = s;
  }
  void put_metric(const MetricRecord& m) override { metrics_[m.name + "@" + m.bucket] = m; }
  std::map<std::pair<std::string, int64_t>, SampleRecord> samples_;
  std::map<std::string, MetricRecord> metrics_;
  int fail_after_ = -1;
  int puts_ = 0;
  std::string task_;
};

RunOptions quiet() {
  RunOptions r;
  r.progress = false;
  return r;
}

}  // namespace

TEST(Runner, ScriptedAnswersScorePerBucket) {
  FakeTokenizer tok;
  TaskOptions o;
  o.contexts = {1024, 2048};
  o.depths = {0, 100};
  o.samples = 2;
  auto task = make_task("passkey", o);
  ScriptedModel model(tok);
  // Right answers at 1024, wrong at 2048 except depth 0.
  for (int64_t i = 0; i < task->size(); ++i) {
    TaskSample s = task->make(i, tok);
    bool right = s.context_tokens == 1024 || s.depth_pct == 0;
    model.learn(s.prompt, right ? " " + s.targets[0] + "." : " 1.");
  }
  TestSink sink;
  auto metrics = run_task(*task, tok, model, sink, quiet());
  EXPECT_EQ(sink.samples_.size(), 8u);
  EXPECT_DOUBLE_EQ(sink.metrics_.at("score@").value, 75.0);
  EXPECT_DOUBLE_EQ(sink.metrics_.at("score@ctx=1024").value, 100.0);
  EXPECT_DOUBLE_EQ(sink.metrics_.at("score@ctx=2048").value, 50.0);
  EXPECT_DOUBLE_EQ(sink.metrics_.at("score@ctx=2048,depth=0").value, 100.0);
  EXPECT_DOUBLE_EQ(sink.metrics_.at("score@ctx=2048,depth=100").value, 0.0);
  EXPECT_EQ(sink.metrics_.at("score@ctx=2048,depth=100").n, 2);
  EXPECT_DOUBLE_EQ(sink.metrics_.at("effective_length@").value, 1024);  // 2048 scores 50 <= 85.6
  const auto& s0 = sink.samples_.begin()->second;
  EXPECT_EQ(s0.n_prompt_tokens, 1024);
  EXPECT_EQ(s0.prompt_sha256.size(), 64u);
  EXPECT_GT(s0.n_gen_tokens, 0);
}

TEST(Runner, ResumeEqualsUninterrupted) {
  FakeTokenizer tok;
  TaskOptions o;
  o.contexts = {1024};
  o.depths = {0, 50, 100};
  o.samples = 5;
  for (std::string name : {"niah_single_1", "arith"}) {
    auto task = make_task(name, o);
    ScriptedModel model(tok);
    for (int64_t i = 0; i < task->size(); ++i) {
      TaskSample s = task->make(i, tok);
      model.learn(s.prompt, i % 3 ? " " + s.targets[0] + "\n#### " + s.targets[0] : " 1234");
    }
    TestSink full;
    auto want = run_task(*task, tok, model, full, quiet());

    TestSink part;
    part.fail_after_ = static_cast<int>(task->size() / 2);
    ASSERT_GT(part.fail_after_, 0);
    EXPECT_THROW(run_task(*task, tok, model, part, quiet()), ling::Error);
    EXPECT_EQ(static_cast<int>(part.samples_.size()), part.fail_after_);
    EXPECT_TRUE(part.metrics_.empty());
    part.fail_after_ = -1;
    model.calls_ = 0;
    auto got = run_task(*task, tok, model, part, quiet());
    ASSERT_EQ(got.size(), want.size()) << name;
    for (size_t k = 0; k < got.size(); ++k) {
      EXPECT_EQ(got[k].name, want[k].name);
      EXPECT_EQ(got[k].bucket, want[k].bucket);
      EXPECT_EQ(got[k].value, want[k].value) << name << " " << got[k].name << "@" << got[k].bucket;
      EXPECT_EQ(got[k].n, want[k].n);
    }
    EXPECT_EQ(part.puts_, task->size()) << "stored samples were recomputed";
  }
}

TEST(Runner, TextTaskResume) {
  FakeTokenizer tok;
  BigramModel m(tok.vocab(), 1), ref(tok.vocab(), 2);
  PplOptions o;
  o.n_ctx = 100;
  std::string text(default_text().substr(0, 1500));
  for (bool kld : {false, true}) {
    TaskInfo info = text_task_info(kld, text, "builtin", o, true);
    TestSink full, part;
    auto want = run_text_task(info, text, tok, m, kld ? &ref : nullptr, o, full, quiet());
    part.fail_after_ = 5;
    EXPECT_THROW(run_text_task(info, text, tok, m, kld ? &ref : nullptr, o, part, quiet()), ling::Error);
    part.fail_after_ = -1;
    auto got = run_text_task(info, text, tok, m, kld ? &ref : nullptr, o, part, quiet());
    ASSERT_EQ(got.size(), want.size());
    for (size_t k = 0; k < got.size(); ++k) EXPECT_EQ(got[k].value, want[k].value) << got[k].name << got[k].bucket;
    EXPECT_EQ(part.puts_, 16);  // ceil(1500 / 99) windows, each stored once
  }
}

TEST(Runner, BatchedGenerationEqualsSingle) {
  FakeTokenizer tok;
  TaskOptions o;
  o.contexts = {1024};
  o.depths = {0, 50, 100};
  o.samples = 3;
  auto task = make_task("niah_single_2", o);
  BigramModel single(tok.vocab(), 9);
  ling::eval::test::BatchedBigram batched(tok.vocab(), 9, 4);
  TestSink a, b;
  RunOptions r = quiet();
  r.batch = 4;
  auto ma = run_task(*task, tok, single, a, r);
  auto mb = run_task(*task, tok, batched, b, r);
  EXPECT_EQ(batched.open_, 0) << "slots left open";
  EXPECT_LT(batched.calls_, 9 * 64 + 9) << "decode steps were not batched";
  ASSERT_EQ(a.samples_.size(), 9u);
  ASSERT_EQ(b.samples_.size(), 9u);
  for (auto& [k, s] : a.samples_) {
    const auto& t = b.samples_.at(k);
    EXPECT_EQ(s.output_ids, t.output_ids) << k.second;
    EXPECT_EQ(s.output_text, t.output_text);
    EXPECT_EQ(s.prompt_sha256, t.prompt_sha256);
    EXPECT_GT(s.n_gen_tokens, 0);
  }
  ASSERT_EQ(ma.size(), mb.size());
  for (size_t k = 0; k < ma.size(); ++k) EXPECT_EQ(ma[k].value, mb[k].value);
}
