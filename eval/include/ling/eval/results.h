// `ling results` logic over plain rows read from the store: per-metric comparison of two runs (joined on
// task, metric and bucket; delta = B - A), CSV / JSON export and text tables. No SQLite here.
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace ling::eval {

struct MetricRow {
  std::string run_id;
  std::string task;           // "" for run-level metrics
  std::string name;
  std::string bucket;
  double value = 0;
  std::optional<double> stderr_;
  int64_t n = 0;
  bool higher_is_better = true;
};

struct CompareRow {
  std::string task, name, bucket;
  std::optional<double> a, b;  // absent when the run lacks the metric
  std::optional<double> delta; // b - a
  std::optional<double> rel;   // (b - a) / |a| when a != 0
  bool higher_is_better = true;
};

std::vector<CompareRow> compare_metrics(const std::vector<MetricRow>& a, const std::vector<MetricRow>& b);
std::string format_compare(const std::vector<CompareRow>& rows, const std::string& run_a, const std::string& run_b);
std::string format_metric_rows(const std::vector<MetricRow>& rows);

// CSV (RFC 4180 quoting) with header run_id,task,name,bucket,value,stderr,n,higher_is_better.
std::string metrics_csv(const std::vector<MetricRow>& rows);
// JSON: {"run": <run_json or null>, "metrics": [{...}], "samples": <samples_json or []>}.
std::string metrics_json(const std::vector<MetricRow>& rows, const std::string& run_json = "null",
                         const std::string& samples_json = "[]");
std::string csv_field(const std::string& s);

// Metrics from a JSON file: the array `ling eval --json` prints, or the object `ling results export --json`
// writes. run_id defaults to the file's stem. Throws naming the file on anything else.
std::vector<MetricRow> read_metrics_json(const std::string& path);

}  // namespace ling::eval
