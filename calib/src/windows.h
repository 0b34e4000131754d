// Calibration windows shared by `ling calibrate` and `ling convert --refit`: the first `tokens` tokens of a
// text, cut into windows of `seq_len` (the last one may be shorter). `option` names the CLI flag in the error
// when the text is too short.
#pragma once
#include <algorithm>
#include <cstdint>
#include <string>
#include <vector>

#include "ling/core/error.h"
#include "ling/tokenizer/tokenizer.h"

namespace ling::calib {

inline std::vector<std::vector<int32_t>> token_windows(const Tokenizer& tok, const std::string& text,
                                                       const std::string& path, int64_t tokens, int64_t seq_len,
                                                       const char* option) {
  const std::vector<int32_t> ids = tok.encode(text, false);
  LING_CHECK(int64_t(ids.size()) >= tokens, path, ": holds ", ids.size(), " tokens, ", option, " asks for ", tokens);
  std::vector<std::vector<int32_t>> windows;
  for (int64_t at = 0; at < tokens; at += seq_len) {
    const int64_t n = std::min(seq_len, tokens - at);
    windows.emplace_back(ids.begin() + at, ids.begin() + at + n);
  }
  return windows;
}

}  // namespace ling::calib
