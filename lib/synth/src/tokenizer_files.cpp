// tokenizer.json, tokenizer_config.json and generation_config.json for synthetic checkpoints (see synth.h).
// The BPE merges are built deterministically from a fixed word list (left-to-right merges of each word, with
// and without the GPT-2 space marker), so equal vocab sizes give equal files.
#include <nlohmann/json.hpp>
#include <set>

#include "ling/core/error.h"
#include "ling/synth/synth.h"

namespace ling::synth {
namespace {

using ordered = nlohmann::ordered_json;

// Ling pre-tokenizer split (eval.md §7.2: contractions, letters, single digits, punctuation, newlines, spaces).
const char* const kLingSplit =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
    "\\s+(?!\\S)|\\s+";

const char* const kWords[] = {
    "the", "of", "and", "to", "in", "is", "that", "for", "it", "as", "was", "with", "be", "by", "on", "not",
    "he", "this", "are", "or", "his", "from", "at", "which", "but", "have", "an", "had", "they", "you", "were",
    "their", "one", "all", "we", "can", "her", "has", "there", "been", "if", "more", "when", "will", "would",
    "who", "so", "no", "model", "token", "layer", "attention", "expert", "tensor", "weight", "hidden", "state",
    "return", "int", "const", "void", "std", "include", "def", "self", "import", "class", "unto", "shall",
    "lord", "said", "thou", "thy", "thee", "him", "them", "then", "out", "up", "into", "also", "what", "about",
};

const char* const kSpecials[] = {"<|endoftext|>", "<|role_end|>", "<role>", "</role>", "<think>", "</think>"};

std::string byte_symbol(int b) {
  bool keep = (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
  int cp = b;
  if (!keep) {
    int n = 0;
    for (int x = 0; x < b; ++x)
      if (!((x >= 0x21 && x <= 0x7E) || (x >= 0xA1 && x <= 0xAC) || (x >= 0xAE && x <= 0xFF))) ++n;
    cp = 256 + n;
  }
  std::string s;
  if (cp < 0x80) {
    s.push_back(static_cast<char>(cp));
  } else {
    s.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
  return s;
}

// Ids of the special tokens: from eos_id upwards when they fit below vocab_size, else downwards.
std::vector<int64_t> special_ids(int64_t vocab_size, int64_t eos_id) {
  const int64_t n = static_cast<int64_t>(std::size(kSpecials));
  std::vector<int64_t> ids;
  bool up = eos_id + n <= vocab_size;
  for (int64_t k = 0; k < n; ++k) ids.push_back(up ? eos_id + k : eos_id - k);
  return ids;
}

}  // namespace

std::string make_tokenizer_json(int64_t vocab_size, int64_t eos_id) {
  const int64_t n_special = static_cast<int64_t>(std::size(kSpecials));
  LING_CHECK(vocab_size >= 256 + n_special, "synth: vocab_size ", vocab_size, " is too small for a byte-level tokenizer (needs >= ",
             256 + n_special, ")");
  LING_CHECK(eos_id >= 256 + n_special - 1 && eos_id < vocab_size, "synth: eos_token_id ", eos_id,
             " must lie in [", 256 + n_special - 1, ", ", vocab_size, ")");
  std::vector<int64_t> sids = special_ids(vocab_size, eos_id);
  std::set<int64_t> reserved(sids.begin(), sids.end());

  ordered vocab = ordered::object();
  std::set<std::string> have;
  for (int b = 0; b < 256; ++b) {
    vocab[byte_symbol(b)] = b;
    have.insert(byte_symbol(b));
  }
  int64_t next = 256;
  auto next_free = [&] {
    while (reserved.count(next)) ++next;
    return next;
  };
  ordered merges = ordered::array();
  const std::string space = byte_symbol(' ');
  for (const char* prefix : {"\xC4\xA0", ""}) {  // "Ġword" first, then "word"
    for (const char* w : kWords) {
      std::string word(w);
      std::string cur = std::string(prefix).empty() ? word.substr(0, 1) : space;
      size_t start = std::string(prefix).empty() ? 1 : 0;
      for (size_t i = start; i < word.size(); ++i) {
        std::string piece = word.substr(i, 1);
        std::string merged = cur + piece;
        if (!have.count(merged)) {
          if (next_free() >= vocab_size) break;
          vocab[merged] = next++;
          have.insert(merged);
          merges.push_back(ordered::array({cur, piece}));
        }
        cur = merged;
      }
    }
  }
  ordered added = ordered::array();
  for (size_t k = 0; k < sids.size(); ++k)
    added.push_back({{"id", sids[k]}, {"content", kSpecials[k]}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", true}});
  ordered j;
  j["version"] = "1.0";
  j["truncation"] = nullptr;
  j["padding"] = nullptr;
  j["added_tokens"] = added;
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {
      {"type", "Sequence"},
      {"pretokenizers",
       ordered::array({{{"type", "Split"}, {"pattern", {{"Regex", kLingSplit}}}, {"behavior", "Isolated"}, {"invert", false}},
                       {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}}})}};
  j["post_processor"] = nullptr;
  j["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}};
  j["model"] = {{"type", "BPE"}, {"dropout", nullptr}, {"unk_token", nullptr}, {"continuing_subword_prefix", ""},
                {"end_of_word_suffix", ""}, {"fuse_unk", false}, {"byte_fallback", false}, {"ignore_merges", false},
                {"vocab", vocab}, {"merges", merges}};
  return j.dump(2) + "\n";
}

std::string make_tokenizer_config_json(int64_t eos_id, int64_t max_positions) {
  (void)eos_id;
  ordered j;
  j["add_bos_token"] = false;
  j["add_eos_token"] = false;
  j["bos_token"] = nullptr;
  j["eos_token"] = "<|endoftext|>";
  j["pad_token"] = "<|endoftext|>";
  j["clean_up_tokenization_spaces"] = false;
  j["model_max_length"] = max_positions;
  j["tokenizer_class"] = "PreTrainedTokenizerFast";
  j["chat_template"] =
      "{% for message in messages %}{% set role = {'system': 'SYSTEM', 'user': 'HUMAN', 'assistant': 'ASSISTANT', "
      "'tool': 'OBSERVATION'}[message['role']] %}<role>{{ role }}</role>{{ message['content'] }}<|role_end|>"
      "{% endfor %}{% if add_generation_prompt %}<role>ASSISTANT</role>{% endif %}";
  return j.dump(2) + "\n";
}

std::string make_generation_config_json(int64_t eos_id) {
  ordered j;
  j["eos_token_id"] = eos_id;
  j["pad_token_id"] = eos_id;
  j["do_sample"] = false;
  return j.dump(2) + "\n";
}

}  // namespace ling::synth
