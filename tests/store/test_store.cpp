// Results store (eval.md §8): migrations, run lifecycle, upserts, foreign keys, two processes writing one
// database at once, and clear errors for files that are not databases.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>

#include "ling/core/error.h"
#include "ling/store/store.h"

namespace ling {
namespace {

namespace fs = std::filesystem;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("ling_store_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
    path_ = (dir_ / "r.sqlite").string();
  }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
  std::string path_;
};

TEST_F(StoreTest, MigratesFromEmptyAndReopens) {
  {
    auto s = Store::open(path_);
    EXPECT_EQ(s->schema_version(), Store::kSchemaVersion);
  }
  auto s = Store::open(path_);
  EXPECT_EQ(s->schema_version(), Store::kSchemaVersion);
  EXPECT_TRUE(s->list_runs().empty());
}

TEST_F(StoreTest, RunLifecycleWithModelTaskSamplesMetricsPerf) {
  auto s = Store::open(path_);
  std::string id = s->begin_run("eval", {"ling", "eval", "m"}, R"({"ctx":4096})", 7);
  EXPECT_EQ(id.size(), 36u);
  ModelRecord m{"tiny", "BailingMoeV2_5ForCausalLM", "bailing_hybrid", "c0ffee", "{}", "", "d1g357", 10, 5,
                "F32:3", "generated", std::nullopt};
  int64_t mid = s->upsert_model(m);
  EXPECT_EQ(s->upsert_model(m), mid);  // idempotent
  s->set_run_model(id, mid);
  int64_t tid = s->upsert_task({"passkey", "retrieval", "1", R"({"ctx":[1024]})", "abc", ""});
  EXPECT_EQ(s->upsert_task({"passkey", "retrieval", "1", R"({"ctx":[1024]})", "abc", ""}), tid);
  SampleRow row;
  row.run_id = id;
  row.task_id = tid;
  row.idx = 3;
  row.output_ids = {5, 6, 7};
  row.score = 1;
  row.correct = true;
  row.depth_pct = 50;
  s->add_sample(row);
  auto back = s->samples(id, tid);
  ASSERT_EQ(back.size(), 1u);
  EXPECT_EQ(back[0].output_ids, (std::vector<int32_t>{5, 6, 7}));
  EXPECT_EQ(*back[0].depth_pct, 50);
  MetricRow metric;
  metric.run_id = id;
  metric.name = "accuracy";
  metric.value = 0.5;
  s->add_metric(metric);
  metric.value = 0.75;
  s->add_metric(metric);  // run-level upsert replaces
  metric.task_id = tid;
  s->add_metric(metric);
  auto ms = s->metrics(id);
  ASSERT_EQ(ms.size(), 2u);
  PerfRow p;
  p.run_id = id;
  p.op = "gemm";
  p.gbps = 10;
  s->add_perf(p);
  s->add_artifact(id, "log", "/tmp/x", "", 0);
  s->add_event(id, "phase", R"({"x":1})");
  s->end_run(id, "ok", 0);
  RunSummary r = s->get_run(id.substr(0, 8));
  EXPECT_EQ(r.status, "ok");
  EXPECT_EQ(*r.exit_code, 0);
  EXPECT_EQ(r.model_label, "tiny");
  EXPECT_EQ(r.n_samples, 1);
  EXPECT_EQ(r.n_metrics, 2);
  EXPECT_EQ(r.n_perf, 1);
  EXPECT_EQ(r.n_artifacts, 1);
  EXPECT_GE(r.wall_seconds, 0.0);
  EXPECT_THROW(s->get_run("zzzz"), Error);
}

TEST_F(StoreTest, ForeignKeysAndChecksAreEnforced) {
  auto s = Store::open(path_);
  SampleRow row;
  row.run_id = "no-such-run";
  row.task_id = 1;
  EXPECT_THROW(s->add_sample(row), Error);
  std::string id = s->begin_run("x", {});
  EXPECT_THROW(s->end_run(id, "bogus", 0), Error);  // status CHECK
  EXPECT_THROW(s->set_run_settings(id, "{not json"), Error);
}

TEST_F(StoreTest, TwoProcessesWriteConcurrentlyNothingLost) {
  Store::open(path_);  // create first so both children only write
  const int kRows = 200;
  pid_t kids[2];
  for (int k = 0; k < 2; ++k) {
    kids[k] = fork();
    ASSERT_GE(kids[k], 0);
    if (kids[k] == 0) {
      try {
        auto s = Store::open(path_);
        std::string id = s->begin_run("writer", {std::to_string(k)});
        for (int i = 0; i < kRows; ++i) {
          MetricRow m;
          m.run_id = id;
          m.name = "m" + std::to_string(i);
          m.value = i;
          s->add_metric(m);
        }
        s->end_run(id, "ok", 0);
        _exit(0);
      } catch (const std::exception& e) {
        fprintf(stderr, "child %d: %s\n", k, e.what());
        _exit(1);
      }
    }
  }
  for (pid_t pid : kids) {
    int status = 0;
    waitpid(pid, &status, 0);
    ASSERT_TRUE(WIFEXITED(status));
    EXPECT_EQ(WEXITSTATUS(status), 0);
  }
  auto s = Store::open(path_);
  auto runs = s->list_runs(10, "writer");
  ASSERT_EQ(runs.size(), 2u);
  for (const auto& r : runs) {
    EXPECT_EQ(r.status, "ok");
    EXPECT_EQ(r.n_metrics, kRows);
  }
}

TEST_F(StoreTest, ConcurrentCreatorsOfAFreshDatabase) {
  for (int round = 0; round < 5; ++round) {
    const std::string path = (dir_ / ("fresh" + std::to_string(round) + ".sqlite")).string();
    pid_t kids[3];
    for (int k = 0; k < 3; ++k) {
      kids[k] = fork();
      ASSERT_GE(kids[k], 0);
      if (kids[k] == 0) {
        try {
          auto s = Store::open(path);
          std::string id = s->begin_run("creator", {});
          s->end_run(id, "ok", 0);
          _exit(0);
        } catch (const std::exception& e) {
          fprintf(stderr, "creator %d: %s\n", k, e.what());
          _exit(1);
        }
      }
    }
    for (pid_t pid : kids) {
      int status = 0;
      waitpid(pid, &status, 0);
      ASSERT_TRUE(WIFEXITED(status));
      EXPECT_EQ(WEXITSTATUS(status), 0) << "round " << round;
    }
    EXPECT_EQ(Store::open(path)->list_runs(10, "creator").size(), 3u);
  }
}

TEST_F(StoreTest, GarbageFileIsAClearError) {
  std::ofstream(path_) << "this is not a database, it is text that is long enough to have a header";
  try {
    Store::open(path_);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(path_), std::string::npos) << e.what();
  }
}

TEST_F(StoreTest, UnwritableLocationIsAClearError) {
  EXPECT_THROW(Store::open((dir_ / "no" / "such" / "dir" / "r.sqlite").string()), Error);
}

TEST_F(StoreTest, CliRecordsRunsAndReadsThemBack) {
  const std::string bin = LING_BINARY;
  const std::string cfg = std::string(LING_SOURCE_DIR) + "/configs/ling-2.5-1t";
  ASSERT_EQ(std::system((bin + " --db " + path_ + " inspect " + cfg + " > /dev/null").c_str()), 0);
  EXPECT_NE(std::system((bin + " --db " + path_ + " inspect /nonexistent > /dev/null 2>&1").c_str()), 0);
  std::string out = (dir_ / "runs.json").string();
  ASSERT_EQ(std::system((bin + " --db " + path_ + " db runs --json > " + out).c_str()), 0);
  std::ifstream in(out);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("\"status\": \"ok\""), std::string::npos) << text;
  EXPECT_NE(text.find("\"status\": \"failed\""), std::string::npos) << text;
  auto s = Store::open(path_);
  EXPECT_EQ(s->list_runs(10, "inspect").size(), 2u);
  EXPECT_EQ(s->list_runs(10, "db").size(), 0u);  // db records nothing
}

}  // namespace
}  // namespace ling
