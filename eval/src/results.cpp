// Comparison, export and tables for `ling results` (results.h).
#include "ling/eval/results.h"

#include <cmath>
#include <cstdio>
#include <map>
#include <nlohmann/json.hpp>
#include <tuple>

#include "ling/core/error.h"

namespace ling::eval {

std::vector<CompareRow> compare_metrics(const std::vector<MetricRow>& a, const std::vector<MetricRow>& b) {
  std::map<std::tuple<std::string, std::string, std::string>, CompareRow> joined;
  for (const auto& r : a) {
    auto& c = joined[{r.task, r.name, r.bucket}];
    c.task = r.task, c.name = r.name, c.bucket = r.bucket, c.a = r.value, c.higher_is_better = r.higher_is_better;
  }
  for (const auto& r : b) {
    auto& c = joined[{r.task, r.name, r.bucket}];
    c.task = r.task, c.name = r.name, c.bucket = r.bucket, c.b = r.value, c.higher_is_better = r.higher_is_better;
  }
  std::vector<CompareRow> out;
  for (auto& [k, c] : joined) {
    if (c.a && c.b) {
      c.delta = *c.b - *c.a;
      if (*c.a != 0) c.rel = *c.delta / std::fabs(*c.a);
    }
    out.push_back(c);
  }
  return out;
}

namespace {
std::string opt(const std::optional<double>& v) {
  if (!v) return "-";
  char b[32];
  std::snprintf(b, sizeof b, "%.6g", *v);
  return b;
}
}  // namespace

std::string format_compare(const std::vector<CompareRow>& rows, const std::string& run_a, const std::string& run_b) {
  std::string out = cat("A = ", run_a, "\nB = ", run_b, "\n");
  char line[320];
  std::snprintf(line, sizeof line, "%-16s %-22s %-24s %12s %12s %12s %9s\n", "task", "metric", "bucket", "A", "B",
                "B-A", "rel");
  out += line;
  for (const auto& r : rows) {
    std::string rel = r.rel ? opt(*r.rel * 100) + "%" : "-";
    std::string mark;
    if (r.delta && *r.delta != 0) mark = ((*r.delta > 0) == r.higher_is_better) ? "  better" : "  worse";
    std::snprintf(line, sizeof line, "%-16s %-22s %-24s %12s %12s %12s %9s%s\n", r.task.empty() ? "-" : r.task.c_str(),
                  r.name.c_str(), r.bucket.empty() ? "-" : r.bucket.c_str(), opt(r.a).c_str(), opt(r.b).c_str(),
                  opt(r.delta).c_str(), rel.c_str(), mark.c_str());
    out += line;
  }
  return out;
}

std::string format_metric_rows(const std::vector<MetricRow>& rows) {
  std::string out;
  char line[320];
  std::snprintf(line, sizeof line, "%-16s %-22s %-24s %12s %10s %8s\n", "task", "metric", "bucket", "value", "stderr",
                "n");
  out += line;
  for (const auto& r : rows) {
    std::snprintf(line, sizeof line, "%-16s %-22s %-24s %12s %10s %8lld\n", r.task.empty() ? "-" : r.task.c_str(),
                  r.name.c_str(), r.bucket.empty() ? "-" : r.bucket.c_str(), opt(r.value).c_str(),
                  opt(r.stderr_).c_str(), static_cast<long long>(r.n));
    out += line;
  }
  return out;
}

std::string csv_field(const std::string& s) {
  if (s.find_first_of(",\"\n\r") == std::string::npos) return s;
  std::string q = "\"";
  for (char c : s) q += c == '"' ? std::string("\"\"") : std::string(1, c);
  return q + "\"";
}

std::string metrics_csv(const std::vector<MetricRow>& rows) {
  std::string out = "run_id,task,name,bucket,value,stderr,n,higher_is_better\n";
  char v[40];
  for (const auto& r : rows) {
    std::snprintf(v, sizeof v, "%.17g", r.value);
    std::string se;
    if (r.stderr_) {
      char b[40];
      std::snprintf(b, sizeof b, "%.17g", *r.stderr_);
      se = b;
    }
    out += cat(csv_field(r.run_id), ",", csv_field(r.task), ",", csv_field(r.name), ",", csv_field(r.bucket), ",", v,
               ",", se, ",", r.n, ",", r.higher_is_better ? 1 : 0, "\n");
  }
  return out;
}

std::string metrics_json(const std::vector<MetricRow>& rows, const std::string& run_json,
                         const std::string& samples_json) {
  nlohmann::json j;
  try {
    j["run"] = nlohmann::json::parse(run_json);
    j["samples"] = nlohmann::json::parse(samples_json);
  } catch (const std::exception& e) {
    LING_THROW("results export: stored JSON is not valid (", e.what(), ")");
  }
  j["metrics"] = nlohmann::json::array();
  for (const auto& r : rows)
    j["metrics"].push_back({{"run_id", r.run_id}, {"task", r.task}, {"name", r.name}, {"bucket", r.bucket},
                            {"value", r.value}, {"stderr", r.stderr_ ? nlohmann::json(*r.stderr_) : nlohmann::json()},
                            {"n", r.n}, {"higher_is_better", r.higher_is_better}});
  return j.dump(2) + "\n";
}

}  // namespace ling::eval
