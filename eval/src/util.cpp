// The prompt hash, the platform-independent RNG and size parsing declared in ling/eval/util.h.
#include "ling/eval/util.h"

#include <array>
#include <charconv>
#include <algorithm>
#include <cstring>
#include <fstream>

#include "ling/core/error.h"
#include "ling/core/hash.h"

namespace ling::eval {

std::string sha256_ids(std::span<const int32_t> ids) {
  std::string bytes(ids.size() * 4, '\0');
  for (size_t i = 0; i < ids.size(); ++i) {
    uint32_t v = static_cast<uint32_t>(ids[i]);
    for (int k = 0; k < 4; ++k) bytes[4 * i + k] = static_cast<char>((v >> (8 * k)) & 0xff);
  }
  return sha256_hex(bytes);
}

uint64_t Rng::next() {
  uint64_t z = (state_ += 0x9e3779b97f4a7c15ULL);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

Rng Rng::derive(uint64_t seed, std::string_view label, uint64_t index) {
  // FNV-1a of the label mixed with seed and index, then scrambled by one splitmix step.
  uint64_t h = 0xcbf29ce484222325ULL;
  for (unsigned char c : label) h = (h ^ c) * 0x100000001b3ULL;
  Rng r(seed ^ (h * 0x9e3779b97f4a7c15ULL) ^ (index + 0x632be59bd9b4e019ULL) * 0xd1b54a32d192ed03ULL);
  r.next();
  return r;
}

uint64_t Rng::below(uint64_t n) {
  LING_CHECK(n > 0, "Rng::below: empty range");
  uint64_t limit = ~uint64_t(0) - (~uint64_t(0) % n);  // reject the biased tail
  for (;;) {
    uint64_t v = next();
    if (v < limit) return v % n;
  }
}

int64_t Rng::range(int64_t lo, int64_t hi) {
  LING_CHECK(lo <= hi, "Rng::range: lo ", lo, " > hi ", hi);
  return lo + static_cast<int64_t>(below(static_cast<uint64_t>(hi - lo) + 1));
}

double Rng::uniform() { return static_cast<double>(next() >> 11) * (1.0 / 9007199254740992.0); }

int64_t parse_size(std::string_view text) {
  std::string_view s = text;
  while (!s.empty() && s.front() == ' ') s.remove_prefix(1);
  while (!s.empty() && s.back() == ' ') s.remove_suffix(1);
  int64_t mult = 1;
  if (!s.empty() && (s.back() == 'K' || s.back() == 'k')) mult = 1024, s.remove_suffix(1);
  else if (!s.empty() && (s.back() == 'M' || s.back() == 'm')) mult = 1024 * 1024, s.remove_suffix(1);
  int64_t v = 0;
  auto [ptr, ec] = std::from_chars(s.data(), s.data() + s.size(), v);
  LING_CHECK(!s.empty() && ec == std::errc() && ptr == s.data() + s.size() && v > 0,
             "bad size '", text, "': expected a positive integer with an optional K or M suffix (e.g. 4K)");
  return v * mult;
}

std::vector<int64_t> parse_size_list(std::string_view csv) {
  std::vector<int64_t> out;
  size_t start = 0;
  while (start <= csv.size()) {
    size_t end = csv.find(',', start);
    if (end == std::string_view::npos) end = csv.size();
    out.push_back(parse_size(csv.substr(start, end - start)));
    start = end + 1;
  }
  return out;
}

std::vector<double> parse_double_list(std::string_view csv) {
  std::vector<double> out;
  size_t start = 0;
  while (start <= csv.size()) {
    size_t end = csv.find(',', start);
    if (end == std::string_view::npos) end = csv.size();
    std::string item(csv.substr(start, end - start));
    size_t used = 0;
    double v = 0;
    try {
      v = std::stod(item, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    LING_CHECK(!item.empty() && used == item.size(), "bad number '", item, "' in list '", csv, "'");
    out.push_back(v);
    start = end + 1;
  }
  return out;
}

std::string format_size(int64_t tokens) {
  if (tokens >= 1024 * 1024 && tokens % (1024 * 1024) == 0) return cat(tokens / (1024 * 1024), "M");
  if (tokens >= 1024 && tokens % 1024 == 0) return cat(tokens / 1024, "K");
  return cat(tokens);
}

}  // namespace ling::eval
