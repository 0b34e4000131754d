// Scorers (eval.md §1.1, §1.2, §2.1). RULER string match: the prediction is stripped and control characters
// 0x00-0x1f become newlines, then each reference is searched case-insensitively. Passkey: the first digit run
// of the first non-empty output line equals the key. GSM8K: strict = the number after "#### " (else after
// "The answer is "), flexible = the last number in the output; numbers compare after dropping "$", ",", a
// leading "+", trailing dots and trailing fractional zeros ("1,000.50" == "1000.5").
#pragma once
#include <optional>
#include <string>
#include <vector>

#include "ling/eval/tasks.h"

namespace ling::eval {

std::string ruler_normalize(const std::string& prediction);
double string_match_all(const std::string& prediction, const std::vector<std::string>& refs);   // 0..1
double string_match_part(const std::string& prediction, const std::vector<std::string>& refs);  // 0 or 1
bool passkey_exact(const std::string& prediction, const std::string& key);

std::optional<std::string> gsm8k_strict(const std::string& output);    // extracted, normalised
std::optional<std::string> gsm8k_flexible(const std::string& output);  // extracted, normalised
std::string normalize_number(const std::string& text);                 // "" when it holds no digit

struct SampleScore {
  double score = 0;      // 0..1: the task's main metric (gsm8k: strict match)
  bool correct = false;  // score == 1
  double flexible = -1;  // gsm8k only: flexible match 0/1 (-1 otherwise)
  std::string extracted; // what the scorer read ("" when nothing)
};
SampleScore score_sample(MetricKind kind, const std::string& output, const std::vector<std::string>& targets);

}  // namespace ling::eval
