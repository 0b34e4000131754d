// Small deterministic helpers for ling_eval: SHA-256 (from ling_core) of bytes and of token ids, a seeded RNG whose
// streams are identical on every platform (splitmix64 + unbiased bounded integers; std:: distributions are
// implementation-defined and are never used for generated data), and size parsing ("4K" -> 4096).
#pragma once
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "ling/core/hash.h"

namespace ling::eval {

using ling::sha256_file;
using ling::sha256_hex;
// Hash of token ids as little-endian int32 bytes: the stable prompt hash.
std::string sha256_ids(std::span<const int32_t> ids);

class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  // Derive an independent stream from a seed and labels (task name, sample index, ...).
  static Rng derive(uint64_t seed, std::string_view label, uint64_t index);
  uint64_t next();
  uint64_t below(uint64_t n);                   // uniform in [0, n), n > 0
  int64_t range(int64_t lo, int64_t hi);        // uniform in [lo, hi]
  double uniform();                             // [0, 1)

 private:
  uint64_t state_;
};

// "4096", "4K", "4k" (x1024), "1M" (x1048576) -> tokens; throws ling::Error on anything else.
int64_t parse_size(std::string_view text);
std::vector<int64_t> parse_size_list(std::string_view csv);
std::vector<double> parse_double_list(std::string_view csv);
std::string format_size(int64_t tokens);      // 4096 -> "4K", 1000 -> "1000"

// The built-in public-domain default text (KJV Genesis 1-4, eval/data/kjv-genesis-1-4.txt).
std::string_view default_text();
std::string default_text_name();

}  // namespace ling::eval
