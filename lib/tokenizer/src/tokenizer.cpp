// Tokenizer encode/decode (eval.md §7.2 steps 1-5): added tokens first (leftmost-longest, lstrip/rstrip/
// single_word), then normalizer, pre-tokenizer and BPE per piece with a bounded cache; decode reverses the
// byte map (tokens with code points outside it are emitted raw, as the HF ByteLevel decoder does) and
// replaces invalid UTF-8 with U+FFFD.
#include <cstring>

#include "internal.h"
#include "ling/core/error.h"

namespace ling {
namespace {

constexpr size_t kCacheLimit = 1 << 18;  // entries; the cache is cleared when full

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'; }
bool is_word(char c) {
  auto u = static_cast<unsigned char>(c);
  return u >= 0x80 || (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

struct AddedMatch {
  size_t begin, end;  // span swallowed (including lstrip/rstrip whitespace)
  int32_t id;
};

// Earliest (then longest) added-token match at or after `from`; false when none.
bool find_added(const Tokenizer::Impl& t, std::string_view text, size_t from, bool allow_special, AddedMatch& m) {
  for (size_t i = from; i < text.size(); ++i) {
    const auto& cands = t.added_by_byte[static_cast<unsigned char>(text[i])];
    for (int k : cands) {
      const AddedToken& a = t.added[static_cast<size_t>(k)];
      if (a.special && !allow_special) continue;
      size_t len = a.content.size();
      if (i + len > text.size() || std::memcmp(text.data() + i, a.content.data(), len) != 0) continue;
      if (a.single_word && ((i > 0 && is_word(text[i - 1])) || (i + len < text.size() && is_word(text[i + len]))))
        continue;
      m = {i, i + len, a.id};
      if (a.lstrip)
        while (m.begin > from && is_space(text[m.begin - 1])) --m.begin;
      if (a.rstrip)
        while (m.end < text.size() && is_space(text[m.end])) ++m.end;
      return true;
    }
  }
  return false;
}

}  // namespace

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

std::vector<int32_t> Tokenizer::encode(std::string_view raw, bool allow_special) const {
  const Impl& t = *impl_;
  const std::string text = sanitize_utf8(raw);
  std::vector<int32_t> ids;
  std::vector<std::string> pieces;
  auto encode_text = [&](std::string_view seg) {
    if (seg.empty()) return;
    pieces.clear();
    if (t.normalize_nfc) {
      std::string norm = tok::nfc(seg, t.source);
      tok::pretokenize(t.pre, norm, pieces);
    } else {
      tok::pretokenize(t.pre, seg, pieces);
    }
    for (const std::string& p : pieces) {
      {
        std::lock_guard<std::mutex> lock(t.cache_mutex);
        auto it = t.cache.find(p);
        if (it != t.cache.end()) { ids.insert(ids.end(), it->second.begin(), it->second.end()); continue; }
      }
      size_t before = ids.size();
      tok::bpe_encode(t.model, t.byte_map, p, ids);
      std::lock_guard<std::mutex> lock(t.cache_mutex);
      if (t.cache.size() >= kCacheLimit) t.cache.clear();
      t.cache.emplace(p, std::vector<int32_t>(ids.begin() + static_cast<ptrdiff_t>(before), ids.end()));
    }
  };
  size_t pos = 0;
  AddedMatch m{};
  while (pos < text.size() && find_added(t, text, pos, allow_special, m)) {
    encode_text(std::string_view(text).substr(pos, m.begin - pos));
    ids.push_back(m.id);
    pos = m.end;
  }
  encode_text(std::string_view(text).substr(pos));
  return ids;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special) const {
  const Impl& t = *impl_;
  std::string bytes;
  for (int32_t id : ids) {
    LING_CHECK(id >= 0 && static_cast<size_t>(id) < t.id_kind.size() && t.id_kind[static_cast<size_t>(id)] != 0,
               t.source, ": decode: unknown token id ", id);
    const std::string& tok = t.id_to_token[static_cast<size_t>(id)];
    uint8_t kind = t.id_kind[static_cast<size_t>(id)];
    if (kind >= 2) {
      if (!(skip_special && kind == 3)) bytes += tok;
      continue;
    }
    if (t.decode_byte_fallback && tok.size() == 6 && tok.compare(0, 3, "<0x") == 0 && tok[5] == '>') {
      bytes.push_back(static_cast<char>(std::stoi(tok.substr(3, 2), nullptr, 16)));
      continue;
    }
    if (t.decode_byte_level) {
      std::string mapped;
      bool ok = true;
      for (size_t i = 0; i < tok.size() && ok;) {
        auto it = t.byte_map.cp_to_byte.find(tok::next_cp(tok, i));
        if (it == t.byte_map.cp_to_byte.end()) ok = false;
        else mapped.push_back(static_cast<char>(it->second));
      }
      bytes += ok ? mapped : tok;
    } else {
      bytes += tok;
    }
  }
  return sanitize_utf8(bytes);
}

std::optional<int32_t> Tokenizer::token_to_id(std::string_view token) const {
  std::string key(token);
  if (auto it = impl_->added_ids.find(key); it != impl_->added_ids.end()) return it->second;
  if (auto it = impl_->model.vocab.find(key); it != impl_->model.vocab.end()) return it->second;
  return std::nullopt;
}

std::string Tokenizer::id_to_token(int32_t id) const {
  LING_CHECK(id >= 0 && static_cast<size_t>(id) < impl_->id_kind.size() && impl_->id_kind[static_cast<size_t>(id)] != 0,
             impl_->source, ": unknown token id ", id);
  return impl_->id_to_token[static_cast<size_t>(id)];
}

bool Tokenizer::is_special(int32_t id) const {
  return id >= 0 && static_cast<size_t>(id) < impl_->id_kind.size() && impl_->id_kind[static_cast<size_t>(id)] == 3;
}

int64_t Tokenizer::vocab_size() const { return static_cast<int64_t>(impl_->id_to_token.size()); }
const std::string& Tokenizer::source() const { return impl_->source; }

}  // namespace ling
