// Internal pieces of the tokenizer (eval.md §7.2): the loaded model tables, the pre-tokenizer steps and the
// BPE merge routine. Not installed; only lib/tokenizer/src includes it.
#pragma once
#include <array>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "ling/tokenizer/tokenizer.h"

namespace ling::tok {

// ---- unicode.cpp ----
// GPT-2 byte map: byte -> code point (as UTF-8), and the inverse (code point -> byte, -1 when not mapped).
struct ByteMap {
  std::array<std::string, 256> byte_to_utf8;
  std::unordered_map<uint32_t, uint8_t> cp_to_byte;
  ByteMap();
};
// Decode one code point at s[i] of valid UTF-8; advances i.
uint32_t next_cp(std::string_view s, size_t& i);
void append_utf8(std::string& out, uint32_t cp);
// NFC normalisation (ICU). `source` names the tokenizer file in errors.
std::string nfc(std::string_view text, const std::string& source);
bool is_ascii(std::string_view s);

// ---- pretokenizer.cpp ----
class Regex {
 public:
  Regex(const std::string& pattern, const std::string& where);  // throws naming `where`
  ~Regex();
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  // All non-overlapping matches [begin, end) of `text` (byte offsets); empty matches are skipped.
  void find_all(std::string_view text, std::vector<std::pair<size_t, size_t>>& out) const;

 private:
  void* code_ = nullptr;  // pcre2_code_8*
  bool jit_ = false;
};

enum class SplitBehavior { Isolated, Removed, MergedWithPrevious, MergedWithNext, Contiguous };

struct PreStep {
  enum Kind { Split, ByteLevel } kind = Split;
  std::unique_ptr<Regex> regex;   // Split with Regex pattern, or ByteLevel with use_regex
  std::string literal;            // Split with String pattern
  SplitBehavior behavior = SplitBehavior::Isolated;
  bool invert = false;
  bool add_prefix_space = false;  // ByteLevel
};

// Apply the steps to `text`, appending pieces (views into `text` or into `storage` when a prefix space is
// added) to `pieces`.
void pretokenize(const std::vector<PreStep>& steps, std::string_view text, std::vector<std::string>& pieces);

// The GPT-2 pattern used by ByteLevel(use_regex = true).
extern const char* const kGpt2Pattern;

// ---- bpe.cpp ----
struct MergeValue {
  int32_t rank;
  int32_t merged;
};

struct Model {
  std::unordered_map<std::string, int32_t> vocab;  // BPE vocab (byte-mapped strings)
  std::unordered_map<uint64_t, MergeValue> merges; // (left id << 32 | right id) -> rank, merged id
  bool byte_level = false;       // a ByteLevel pre-tokenizer is present: map bytes through the GPT-2 map
  bool ignore_merges = false;
  bool byte_fallback = false;
  int32_t unk_id = -1;
  std::array<int32_t, 256> byte_ids{};      // byte-level: id of each byte's mapped symbol (-1 absent)
  std::array<int32_t, 256> fallback_ids{};  // byte_fallback: id of "<0xXX>" (-1 absent)
};

// Encode one pre-token (raw bytes) and append its ids.
void bpe_encode(const Model& model, const ByteMap& bytes, std::string_view piece, std::vector<int32_t>& out);

}  // namespace ling::tok

namespace ling {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool special = false, lstrip = false, rstrip = false, single_word = false, normalized = false;
};

struct Tokenizer::Impl {
  std::string source;
  tok::ByteMap byte_map;
  tok::Model model;
  std::vector<AddedToken> added;                  // in file order
  std::array<std::vector<int>, 256> added_by_byte; // first byte -> indices into `added`, longest first
  std::unordered_map<std::string, int32_t> added_ids;
  bool normalize_nfc = false;
  std::vector<tok::PreStep> pre;
  // decoder
  bool decode_byte_level = false;   // ByteLevel decoder
  bool decode_byte_fallback = false;  // ByteFallback decoder: "<0xXX>" -> byte
  std::vector<std::string> id_to_token;  // every id (model and added); "" for holes
  std::vector<uint8_t> id_kind;          // 0 hole, 1 model, 2 added, 3 added special
  // cache of pre-token -> ids
  mutable std::mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache;
};

}  // namespace ling
