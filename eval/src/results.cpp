// Comparison, export and tables for `ling results` (results.h).
#include "ling/eval/results.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
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
  return j.dump(2, ' ', false, nlohmann::json::error_handler_t::replace) + "\n";
}

std::vector<MetricRow> read_metrics_json(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  LING_CHECK(f.good(), path, ": cannot open");
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(f);
  } catch (const std::exception& e) {
    LING_THROW(path, ": not valid JSON (", e.what(), ")");
  }
  const nlohmann::json* arr = &j;
  std::string run = std::filesystem::path(path).stem().string();
  if (j.is_object()) {
    LING_CHECK(j.contains("metrics") && j["metrics"].is_array(), path, ": expected a \"metrics\" array");
    arr = &j["metrics"];
    if (j.contains("run") && j["run"].is_object() && j["run"].contains("run_id") && j["run"]["run_id"].is_string())
      run = j["run"]["run_id"];
  }
  LING_CHECK(arr->is_array(), path, ": expected a JSON array of metrics or an export object");
  std::vector<MetricRow> out;
  size_t k = 0;
  for (const auto& m : *arr) {
    try {
      MetricRow r;
      r.run_id = m.contains("run_id") && m["run_id"].is_string() ? m["run_id"].get<std::string>() : run;
      r.task = m.at("task").is_null() ? "" : m.at("task").get<std::string>();
      r.name = m.at("name").get<std::string>();
      r.bucket = m.value("bucket", "");
      r.value = m.at("value").get<double>();
      if (m.contains("stderr") && m["stderr"].is_number()) r.stderr_ = m["stderr"].get<double>();
      r.n = m.value("n", int64_t{0});
      r.higher_is_better = m.value("higher_is_better", true);
      out.push_back(r);
    } catch (const std::exception& e) {
      LING_THROW(path, ": metric ", k, " is malformed (", e.what(), ")");
    }
    ++k;
  }
  return out;
}

}  // namespace ling::eval
