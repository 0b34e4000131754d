// BPE merge of one pre-token (eval.md §7.2 step 4): initial symbols are the byte-mapped bytes (byte-level) or
// the UTF-8 characters; then the adjacent pair of lowest merge rank is merged repeatedly (ties: leftmost),
// with a binary heap of candidate pairs validated on pop. Symbols missing from the vocab become "<0xXX>"
// byte tokens (byte_fallback), else unk_token, else they are dropped (as the HF BPE model does).
#include <algorithm>
#include <queue>

#include "internal.h"

namespace ling::tok {
namespace {

struct Sym {
  int32_t id;
  int32_t prev, next;
};

struct Cand {
  int32_t rank, left, right;  // pair (left, right) symbol positions
  int32_t merged;
  bool operator>(const Cand& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
};

inline uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

void push_unknown(const Model& m, std::string_view bytes, std::vector<int32_t>& ids) {
  if (m.byte_fallback) {
    bool all = true;
    for (char c : bytes) all = all && m.fallback_ids[static_cast<unsigned char>(c)] >= 0;
    if (all) {
      for (char c : bytes) ids.push_back(m.fallback_ids[static_cast<unsigned char>(c)]);
      return;
    }
  }
  if (m.unk_id >= 0) ids.push_back(m.unk_id);
}

}  // namespace

void bpe_encode(const Model& m, const ByteMap& bm, std::string_view piece, std::vector<int32_t>& out) {
  if (piece.empty()) return;
  std::string mapped;
  if (m.byte_level) {
    mapped.reserve(piece.size() * 2);
    for (char c : piece) mapped += bm.byte_to_utf8[static_cast<unsigned char>(c)];
  }
  const std::string_view word = m.byte_level ? std::string_view(mapped) : piece;
  if (m.ignore_merges) {
    auto it = m.vocab.find(std::string(word));
    if (it != m.vocab.end()) { out.push_back(it->second); return; }
  }
  // Initial symbols.
  std::vector<int32_t> init;
  init.reserve(piece.size());
  if (m.byte_level) {
    for (char c : piece) {
      int32_t id = m.byte_ids[static_cast<unsigned char>(c)];
      if (id >= 0) init.push_back(id);
      else push_unknown(m, std::string_view(&c, 1), init);
    }
  } else {
    for (size_t i = 0; i < piece.size();) {
      size_t b = i;
      next_cp(piece, i);
      std::string_view ch = piece.substr(b, i - b);
      auto it = m.vocab.find(std::string(ch));
      if (it != m.vocab.end()) init.push_back(it->second);
      else push_unknown(m, ch, init);
    }
  }
  const auto n = static_cast<int32_t>(init.size());
  if (n <= 1) { out.insert(out.end(), init.begin(), init.end()); return; }

  std::vector<Sym> sym(static_cast<size_t>(n));
  for (int32_t i = 0; i < n; ++i) sym[i] = {init[i], i - 1, i + 1 < n ? i + 1 : -1};
  std::vector<Cand> heap;
  heap.reserve(static_cast<size_t>(n) * 2);
  std::priority_queue<Cand, std::vector<Cand>, std::greater<Cand>> pq(std::greater<Cand>(), std::move(heap));
  auto consider = [&](int32_t l, int32_t r) {
    if (l < 0 || r < 0) return;
    auto it = m.merges.find(pair_key(sym[l].id, sym[r].id));
    if (it != m.merges.end()) pq.push({it->second.rank, l, r, it->second.merged});
  };
  for (int32_t i = 0; i + 1 < n; ++i) consider(i, i + 1);
  std::vector<bool> dead(static_cast<size_t>(n), false);
  while (!pq.empty()) {
    Cand c = pq.top();
    pq.pop();
    if (dead[c.left] || dead[c.right] || sym[c.left].next != c.right) continue;
    auto it = m.merges.find(pair_key(sym[c.left].id, sym[c.right].id));
    if (it == m.merges.end() || it->second.rank != c.rank || it->second.merged != c.merged) continue;  // stale
    sym[c.left].id = c.merged;
    dead[c.right] = true;
    sym[c.left].next = sym[c.right].next;
    if (sym[c.left].next >= 0) sym[sym[c.left].next].prev = c.left;
    consider(sym[c.left].prev, c.left);
    consider(c.left, sym[c.left].next);
  }
  for (int32_t i = 0; i >= 0; i = sym[i].next) out.push_back(sym[i].id);
}

}  // namespace ling::tok
