// Token-exact prompt assembly shared by the needle tasks: a prefix, a haystack of text units with needles
// inserted at unit boundaries nearest their depths, then a suffix, totalling exactly `total` tokens.
// The last haystack unit is cut at token granularity to hit the count. Private to ling_eval.
#pragma once
#include <functional>
#include <string>
#include <vector>

#include "ling/eval/model_io.h"

namespace ling::eval::detail {

struct Needle {
  std::string text;   // one line, newline added by the builder
  double depth_pct;   // 0..100
};

// unit(i) returns the i-th haystack line (without newline); units are encoded once per distinct key
// (unit_key(i)), so a repeated filler costs one encode.
struct HaystackSpec {
  std::function<std::string(int64_t)> unit;
  std::function<int64_t(int64_t)> unit_key;  // i -> cache key (identity when null)
};

std::vector<int32_t> build_needle_prompt(const TokenizerLike& tok, const std::string& prefix,
                                         const HaystackSpec& hay, const std::vector<Needle>& needles,
                                         const std::string& suffix, int64_t total, const std::string& task);

// prefix + body + newline padding + suffix == total tokens; throws when body does not fit.
std::vector<int32_t> pad_to(const TokenizerLike& tok, const std::vector<int32_t>& prefix,
                            const std::vector<int32_t>& body, const std::vector<int32_t>& suffix, int64_t total,
                            const std::string& task);

// [bos] + encode(text)
std::vector<int32_t> encode_with_bos(const TokenizerLike& tok, const std::string& text);

}  // namespace ling::eval::detail
