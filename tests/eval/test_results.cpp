// `ling results` logic: compare joins on (task, name, bucket) with B - A deltas and missing sides; CSV quoting;
// JSON export round-trips.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "ling/eval/results.h"

using namespace ling::eval;

TEST(Results, CompareDeltasPerBucket) {
  std::vector<MetricRow> a = {{"A", "passkey", "score", "ctx=1024", 100, 0.0, 5, true},
                              {"A", "passkey", "score", "ctx=4096", 80, std::nullopt, 5, true},
                              {"A", "ppl", "ppl", "", 10, std::nullopt, 100, false}};
  std::vector<MetricRow> b = {{"B", "passkey", "score", "ctx=4096", 60, std::nullopt, 5, true},
                              {"B", "passkey", "score", "ctx=8192", 20, std::nullopt, 5, true},
                              {"B", "ppl", "ppl", "", 12, std::nullopt, 100, false}};
  auto rows = compare_metrics(a, b);
  ASSERT_EQ(rows.size(), 4u);
  // Sorted by (task, name, bucket).
  EXPECT_EQ(rows[0].bucket, "ctx=1024");
  EXPECT_TRUE(rows[0].a && !rows[0].b && !rows[0].delta);
  EXPECT_EQ(rows[1].bucket, "ctx=4096");
  EXPECT_DOUBLE_EQ(*rows[1].delta, -20);
  EXPECT_DOUBLE_EQ(*rows[1].rel, -0.25);
  EXPECT_EQ(rows[2].bucket, "ctx=8192");
  EXPECT_FALSE(rows[2].a.has_value());
  EXPECT_EQ(rows[3].task, "ppl");
  EXPECT_DOUBLE_EQ(*rows[3].delta, 2);
  std::string table = format_compare(rows, "A", "B");
  EXPECT_NE(table.find("worse"), std::string::npos);  // passkey dropped, ppl rose
  EXPECT_EQ(table.find("better"), std::string::npos);
}

TEST(Results, CsvAndJson) {
  std::vector<MetricRow> rows = {{"r1", "niah_single_1", "score", "ctx=4096,depth=50", 12.5, 1.25, 4, true}};
  std::string csv = metrics_csv(rows);
  EXPECT_EQ(csv, "run_id,task,name,bucket,value,stderr,n,higher_is_better\n"
                 "r1,niah_single_1,score,\"ctx=4096,depth=50\",12.5,1.25,4,1\n");
  EXPECT_EQ(csv_field("a\"b"), "\"a\"\"b\"");
  auto j = nlohmann::json::parse(metrics_json(rows, R"({"run_id": "r1"})"));
  EXPECT_EQ(j["run"]["run_id"], "r1");
  EXPECT_EQ(j["metrics"][0]["bucket"], "ctx=4096,depth=50");
  EXPECT_DOUBLE_EQ(j["metrics"][0]["value"].get<double>(), 12.5);
  EXPECT_TRUE(j["samples"].is_array());
}
