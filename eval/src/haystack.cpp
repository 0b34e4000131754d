// Token-exact haystack assembly (see haystack.h). Needles sit on unit boundaries: the boundary whose token
// offset is nearest depth% of the haystack; equal positions keep the needles' order.
#include "haystack.h"

#include <algorithm>
#include <cmath>
#include <unordered_map>

#include "ling/core/error.h"

namespace ling::eval::detail {

std::vector<int32_t> encode_with_bos(const TokenizerLike& tok, const std::string& text) {
  std::vector<int32_t> ids;
  if (auto b = tok.bos()) ids.push_back(*b);
  auto body = tok.encode(text);
  ids.insert(ids.end(), body.begin(), body.end());
  return ids;
}

std::vector<int32_t> build_needle_prompt(const TokenizerLike& tok, const std::string& prefix,
                                         const HaystackSpec& hay, const std::vector<Needle>& needles,
                                         const std::string& suffix, int64_t total, const std::string& task) {
  std::vector<int32_t> head = encode_with_bos(tok, prefix);
  std::vector<int32_t> tail = tok.encode(suffix);
  std::vector<std::vector<int32_t>> needle_ids;
  int64_t fixed = static_cast<int64_t>(head.size() + tail.size());
  for (const auto& n : needles) {
    needle_ids.push_back(tok.encode(n.text + "\n"));
    fixed += static_cast<int64_t>(needle_ids.back().size());
  }
  const int64_t budget = total - fixed;
  LING_CHECK(budget >= 0, "task ", task, ": context ", total, " tokens is too small: the instructions, needles and "
             "question alone take ", fixed, " tokens");

  // Haystack units until the budget is reached; boundaries[k] = token offset after k units.
  std::unordered_map<int64_t, std::vector<int32_t>> cache;
  std::vector<int32_t> hay_ids;
  std::vector<int64_t> boundaries = {0};
  hay_ids.reserve(static_cast<size_t>(budget));
  for (int64_t i = 0; static_cast<int64_t>(hay_ids.size()) < budget; ++i) {
    int64_t key = hay.unit_key ? hay.unit_key(i) : i;
    auto it = cache.find(key);
    if (it == cache.end()) it = cache.emplace(key, tok.encode(hay.unit(i) + "\n")).first;
    LING_CHECK(!it->second.empty(), "task ", task, ": haystack unit ", i, " encodes to no tokens");
    size_t take = std::min<size_t>(it->second.size(), static_cast<size_t>(budget) - hay_ids.size());
    hay_ids.insert(hay_ids.end(), it->second.begin(), it->second.begin() + static_cast<long>(take));
    if (take == it->second.size()) boundaries.push_back(static_cast<int64_t>(hay_ids.size()));
    if (hay.unit_key && cache.size() > 4096) cache.clear();  // bounded memory for non-repeating units
  }

  // Needle positions (boundary nearest to depth%), stable for equal positions.
  std::vector<std::pair<int64_t, size_t>> at;
  for (size_t k = 0; k < needles.size(); ++k) {
    double want = std::clamp(needles[k].depth_pct, 0.0, 100.0) / 100.0 * static_cast<double>(budget);
    auto best = std::min_element(boundaries.begin(), boundaries.end(), [&](int64_t a, int64_t b) {
      return std::fabs(static_cast<double>(a) - want) < std::fabs(static_cast<double>(b) - want);
    });
    at.emplace_back(*best, k);
  }
  std::stable_sort(at.begin(), at.end(), [](auto& a, auto& b) { return a.first < b.first; });

  std::vector<int32_t> out = std::move(head);
  out.reserve(static_cast<size_t>(total));
  int64_t pos = 0;
  for (auto& [p, k] : at) {
    out.insert(out.end(), hay_ids.begin() + pos, hay_ids.begin() + p);
    out.insert(out.end(), needle_ids[k].begin(), needle_ids[k].end());
    pos = p;
  }
  out.insert(out.end(), hay_ids.begin() + pos, hay_ids.end());
  out.insert(out.end(), tail.begin(), tail.end());
  LING_CHECK(static_cast<int64_t>(out.size()) == total, "internal error: task ", task, " built ", out.size(),
             " tokens for a context of ", total);
  return out;
}

std::vector<int32_t> pad_to(const TokenizerLike& tok, const std::vector<int32_t>& prefix,
                            const std::vector<int32_t>& body, const std::vector<int32_t>& suffix, int64_t total,
                            const std::string& task) {
  int64_t used = static_cast<int64_t>(prefix.size() + body.size() + suffix.size());
  LING_CHECK(used <= total, "task ", task, ": context ", total, " tokens is too small (needs at least ", used, ")");
  std::vector<int32_t> nl = tok.encode("\n");
  LING_CHECK(!nl.empty(), "task ", task, ": the tokenizer encodes a newline to no tokens");
  std::vector<int32_t> out = prefix;
  out.insert(out.end(), body.begin(), body.end());
  for (int64_t i = 0; i < total - used; ++i) out.push_back(nl[0]);
  out.insert(out.end(), suffix.begin(), suffix.end());
  return out;
}

}  // namespace ling::eval::detail
