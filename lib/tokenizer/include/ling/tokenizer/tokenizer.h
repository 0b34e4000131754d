// Tokenizer: a Hugging Face tokenizer.json with a byte-level BPE model (eval.md §7.2, architecture.md §6).
// Encoding: (1) added tokens are split out first (leftmost-longest; lstrip/rstrip/single_word honoured;
// special ones only when allow_special); (2) normalizer (null, NFC via ICU, or a Sequence of these);
// (3) pre-tokenizer: Split(Regex|String, behaviour) compiled with PCRE2 (UTF|UCP, JIT) and ByteLevel
// (use_regex true -> the GPT-2 pattern), alone or in a Sequence; (4) BPE: merges by rank (both "a b" and
// ["a","b"] spellings) with a priority queue, ignore_merges, byte_fallback, and a per-tokenizer cache.
// The post-processor is not applied (no BOS/EOS is added): callers add what the chat format needs.
// Invalid UTF-8 input is replaced by U+FFFD (maximal subparts) before encoding; decode() replaces invalid
// UTF-8 produced by byte tokens the same way. Unsupported kinds (WordPiece, Unigram, other normalizers or
// pre-tokenizers) are one ling::Error naming the file and the field. Encoding is thread-safe.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace ling {

class Tokenizer {
 public:
  // `path`: a tokenizer.json file, or a folder holding one (a model folder).
  static Tokenizer load(const std::string& path);
  // Parse from JSON text; `source` names the file in messages.
  static Tokenizer from_json(const std::string& json_text, const std::string& source);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Text -> ids. With allow_special = false, special added tokens in the text are encoded as plain text
  // (non-special added tokens are still matched).
  std::vector<int32_t> encode(std::string_view text, bool allow_special = true) const;
  // Ids -> text (byte-level decoding; special tokens are kept unless skip_special). Unknown ids throw.
  std::string decode(const std::vector<int32_t>& ids, bool skip_special = false) const;

  std::optional<int32_t> token_to_id(std::string_view token) const;  // model vocab or added token
  std::string id_to_token(int32_t id) const;                          // throws for an unknown id
  bool is_special(int32_t id) const;                                  // a special added token
  // Number of ids: max id + 1 over the BPE vocab and the added tokens (may be < config vocab_size).
  int64_t vocab_size() const;
  const std::string& source() const;  // path of the tokenizer.json

  struct Impl;  // opaque (lib/tokenizer/src/internal.h)

 private:
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Replace every maximal invalid UTF-8 subpart by U+FFFD (the Unicode "best practice", as String::from_utf8_lossy).
std::string sanitize_utf8(std::string_view bytes);

}  // namespace ling
