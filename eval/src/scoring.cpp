// Scorers declared in ling/eval/scoring.h. Number extraction is a hand-written scanner (no regex engine):
// a number is an optional '-', then digits with ',' and '.' inside, optionally preceded by '$'.
#include "ling/eval/scoring.h"

#include <cctype>

namespace ling::eval {
namespace {

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool is_digit(char c) { return c >= '0' && c <= '9'; }

// Every number in text, in order, as raw spans (sign and '$' included when adjacent).
std::vector<std::string> numbers_in(const std::string& t) {
  std::vector<std::string> out;
  size_t i = 0;
  while (i < t.size()) {
    if (!is_digit(t[i])) { ++i; continue; }
    size_t start = i;
    if (start > 0 && t[start - 1] == '$') --start;
    if (start > 0 && (t[start - 1] == '-' || t[start - 1] == '+')) --start;
    size_t j = i;
    while (j < t.size() && (is_digit(t[j]) || ((t[j] == ',' || t[j] == '.') && j + 1 < t.size() && is_digit(t[j + 1]))))
      ++j;
    out.push_back(t.substr(start, j - start));
    i = j;
  }
  return out;
}

}  // namespace

std::string ruler_normalize(const std::string& prediction) {
  std::string s = prediction;
  for (char& c : s)
    if (static_cast<unsigned char>(c) < 0x20) c = '\n';
  size_t a = s.find_first_not_of(" \n\t");
  if (a == std::string::npos) return "";
  size_t b = s.find_last_not_of(" \n\t");
  return s.substr(a, b - a + 1);
}

double string_match_all(const std::string& prediction, const std::vector<std::string>& refs) {
  if (refs.empty()) return 0;
  std::string p = lower(ruler_normalize(prediction));
  int hit = 0;
  for (const auto& r : refs) hit += p.find(lower(r)) != std::string::npos ? 1 : 0;
  return static_cast<double>(hit) / static_cast<double>(refs.size());
}

double string_match_part(const std::string& prediction, const std::vector<std::string>& refs) {
  std::string p = lower(ruler_normalize(prediction));
  for (const auto& r : refs)
    if (p.find(lower(r)) != std::string::npos) return 1;
  return 0;
}

bool passkey_exact(const std::string& prediction, const std::string& key) {
  size_t start = 0;
  std::string line;
  while (start <= prediction.size()) {
    size_t end = prediction.find('\n', start);
    if (end == std::string::npos) end = prediction.size();
    line = prediction.substr(start, end - start);
    if (line.find_first_not_of(" \t\r") != std::string::npos) break;
    line.clear();
    start = end + 1;
  }
  size_t i = 0;
  while (i < line.size() && !is_digit(line[i])) ++i;
  size_t j = i;
  while (j < line.size() && is_digit(line[j])) ++j;
  return j > i && line.substr(i, j - i) == key;
}

std::string normalize_number(const std::string& text) {
  std::string s;
  for (char c : text)
    if (c != ',' && c != '$' && c != ' ') s += c;
  bool neg = false;
  if (!s.empty() && (s[0] == '-' || s[0] == '+')) neg = s[0] == '-', s.erase(0, 1);
  while (!s.empty() && s.back() == '.') s.pop_back();
  if (s.empty() || !is_digit(s[0])) return "";
  for (char c : s)
    if (!is_digit(c) && c != '.') return "";
  if (s.find('.') != std::string::npos) {
    while (s.back() == '0') s.pop_back();
    if (s.back() == '.') s.pop_back();
  }
  size_t nz = 0;
  while (nz + 1 < s.size() && s[nz] == '0' && s[nz + 1] != '.') ++nz;
  s.erase(0, nz);
  if (s == "0") neg = false;
  return neg ? "-" + s : s;
}

std::optional<std::string> gsm8k_strict(const std::string& output) {
  for (const std::string marker : {"#### ", "The answer is "}) {
    size_t pos = output.find(marker);
    if (pos == std::string::npos) continue;
    size_t i = pos + marker.size();
    while (i < output.size() && output[i] == ' ') ++i;
    size_t j = i;
    if (j < output.size() && output[j] == '$') ++j;
    if (j < output.size() && output[j] == '-') ++j;
    if (j < output.size() && output[j] == '$') ++j;
    while (j < output.size() && (is_digit(output[j]) || output[j] == ',' || output[j] == '.')) ++j;
    std::string n = normalize_number(output.substr(i, j - i));
    if (!n.empty()) return n;
  }
  return std::nullopt;
}

std::optional<std::string> gsm8k_flexible(const std::string& output) {
  auto nums = numbers_in(output);
  for (auto it = nums.rbegin(); it != nums.rend(); ++it) {
    std::string n = normalize_number(*it);
    if (!n.empty()) return n;
  }
  return std::nullopt;
}

SampleScore score_sample(MetricKind kind, const std::string& output, const std::vector<std::string>& targets) {
  SampleScore r;
  switch (kind) {
    case MetricKind::PasskeyExact:
      r.score = !targets.empty() && passkey_exact(output, targets[0]) ? 1 : 0;
      break;
    case MetricKind::StringMatchAll: r.score = string_match_all(output, targets); break;
    case MetricKind::StringMatchPart: r.score = string_match_part(output, targets); break;
    case MetricKind::Gsm8k: {
      std::string gold = targets.empty() ? "" : normalize_number(targets[0]);
      auto strict = gsm8k_strict(output);
      auto flex = gsm8k_flexible(output);
      r.score = strict && !gold.empty() && *strict == gold ? 1 : 0;
      r.flexible = flex && !gold.empty() && *flex == gold ? 1 : 0;
      r.extracted = strict ? *strict : (flex ? *flex : "");
      break;
    }
  }
  r.correct = r.score == 1;
  return r;
}

}  // namespace ling::eval
