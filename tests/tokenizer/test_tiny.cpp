// Hand-made tokenizer.json files (eval.md §7.2 tests): both merge spellings and rank order, added tokens with
// lstrip/rstrip/single_word and allow_special, byte fallback on/off, ignore_merges, clear errors for
// unsupported kinds, sanitize_utf8 on the Unicode standard's examples, and decode(encode(x)) == x on random
// UTF-8 (invalid byte strings included: they come back with U+FFFD for each maximal invalid subpart).
// Expected ids are worked out by hand from the vocab below (byte b has id b in the byte-level tokenizers).
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <random>

#include "ling/core/error.h"
#include "ling/tokenizer/tokenizer.h"

namespace {

using json = nlohmann::json;
using Ids = std::vector<int32_t>;

// GPT-2 byte map, written out independently of the library: printable bytes map to themselves.
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
  if (cp < 0x80) s.push_back(static_cast<char>(cp));
  else { s.push_back(static_cast<char>(0xC0 | (cp >> 6))); s.push_back(static_cast<char>(0x80 | (cp & 0x3F))); }
  return s;
}

// Byte-level tokenizer: ids 0..255 are the bytes, then the merges' results from id 256 on.
json byte_level_json(const std::vector<std::pair<std::string, std::string>>& merges, bool array_spelling) {
  json vocab = json::object();
  for (int b = 0; b < 256; ++b) vocab[byte_symbol(b)] = b;
  json m = json::array();
  int next = 256;
  for (auto& [a, b] : merges) {
    if (!vocab.contains(a + b)) vocab[a + b] = next++;
    if (array_spelling) m.push_back(json::array({a, b}));
    else m.push_back(a + " " + b);
  }
  json j;
  j["version"] = "1.0";
  j["added_tokens"] = json::array();
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", true}};
  j["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", true}, {"trim_offsets", true}, {"use_regex", true}};
  j["model"] = {{"type", "BPE"}, {"vocab", vocab}, {"merges", m}, {"unk_token", nullptr}, {"byte_fallback", false}};
  return j;
}

ling::Tokenizer make(const json& j) { return ling::Tokenizer::from_json(j.dump(), "tiny/tokenizer.json"); }

const std::vector<std::pair<std::string, std::string>> kHello = {
    {"h", "e"}, {"l", "l"}, {"he", "ll"}, {"hell", "o"}, {"\xC4\xA0", "w"}};  // "Ġ w"
// ids: he 256, ll 257, hell 258, hello 259, Ġw 260

TEST(TokenizerTiny, BothMergeSpellingsGiveTheSameIds) {
  for (bool arrays : {false, true}) {
    ling::Tokenizer t = make(byte_level_json(kHello, arrays));
    EXPECT_EQ(t.encode("hello world"), (Ids{259, 260, 'o', 'r', 'l', 'd'})) << "arrays=" << arrays;
    EXPECT_EQ(t.encode("hell"), (Ids{258}));
    EXPECT_EQ(t.encode("ell"), (Ids{'e', 257}));
    EXPECT_EQ(t.vocab_size(), 261);
    EXPECT_EQ(t.token_to_id("hello"), 259);
    EXPECT_EQ(t.id_to_token(260), "\xC4\xA0w");
  }
}

TEST(TokenizerTiny, MergeRankDecidesTheOrder) {
  // "e l" before "h e": h|e|l|l -> h|el|l, and "h el" does not exist.
  ling::Tokenizer a = make(byte_level_json({{"e", "l"}, {"h", "e"}, {"l", "l"}}, true));  // el 256, he 257, ll 258
  EXPECT_EQ(a.encode("hell"), (Ids{'h', 256, 'l'}));
  ling::Tokenizer b = make(byte_level_json({{"l", "l"}, {"h", "e"}, {"e", "l"}}, true));  // ll 256, he 257, el 258
  EXPECT_EQ(b.encode("hell"), (Ids{257, 256}));
  // Equal pairs merge leftmost first: "lll" -> ll|l.
  EXPECT_EQ(b.encode("lll"), (Ids{256, 'l'}));
}

TEST(TokenizerTiny, PreTokenizerSplitsBeforeMerging) {
  ling::Tokenizer t = make(byte_level_json({{"\xC4\xA0", "\xC4\xA0"}}, false));  // "ĠĠ" 256
  // GPT-2 pattern: "a", "  " (\s+(?!\S) keeps one space for the next word), " b".
  EXPECT_EQ(t.encode("a   b"), (Ids{'a', 256, ' ', 'b'}));
  EXPECT_EQ(t.encode("it's"), (Ids{'i', 't', '\'', 's'}));
}

TEST(TokenizerTiny, AddedTokensLstripRstripSingleWordAndSpecial) {
  json j = byte_level_json(kHello, true);
  j["added_tokens"] = json::array({
      {{"id", 300}, {"content", "<|x|>"}, {"special", true}, {"lstrip", true}, {"rstrip", false},
       {"single_word", false}, {"normalized", false}},
      {{"id", 301}, {"content", "[M]"}, {"special", false}, {"lstrip", false}, {"rstrip", true},
       {"single_word", false}, {"normalized", true}},
      {{"id", 302}, {"content", "cat"}, {"special", false}, {"lstrip", false}, {"rstrip", false},
       {"single_word", true}, {"normalized", true}},
      {{"id", 303}, {"content", "<|x|>>"}, {"special", true}, {"lstrip", false}, {"rstrip", false},
       {"single_word", false}, {"normalized", false}},
  });
  ling::Tokenizer t = make(j);
  EXPECT_EQ(t.vocab_size(), 304);  // added ids beyond the BPE vocab
  EXPECT_EQ(t.encode("a <|x|> b"), (Ids{'a', 300, ' ', 'b'}));        // lstrip swallows the space before
  EXPECT_EQ(t.encode("a[M]  b"), (Ids{'a', 301, 'b'}));               // rstrip swallows the spaces after
  EXPECT_EQ(t.encode("<|x|>>hello"), (Ids{303, 259}));               // longest match at the same start
  EXPECT_EQ(t.encode("cat concat cat."), (Ids{302, ' ', 'c', 'o', 'n', 'c', 'a', 't', ' ', 302, '.'}));
  // Special tokens as text when not allowed; non-special added tokens still match.
  EXPECT_EQ(t.encode("a <|x|> b", false), (Ids{'a', ' ', '<', '|', 'x', '|', '>', ' ', 'b'}));
  EXPECT_EQ(t.encode("[M]x", false), (Ids{301, 'x'}));
  EXPECT_TRUE(t.is_special(300));
  EXPECT_FALSE(t.is_special(301));
  EXPECT_EQ(t.decode({'a', 300, 259}), "a<|x|>hello");
  EXPECT_EQ(t.decode({'a', 300, 259}, true), "ahello");
}

json fallback_json(bool byte_fallback, bool with_unk) {
  json vocab = {{"<unk>", 0}, {"a", 257}, {"b", 258}, {"ab", 259}};
  char name[8];
  for (int b = 0; b < 256; ++b) {
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    vocab[name] = b + 1;
  }
  json j;
  j["added_tokens"] = json::array();
  j["normalizer"] = nullptr;
  j["pre_tokenizer"] = nullptr;
  j["decoder"] = {{"type", "Sequence"}, {"decoders", json::array({{{"type", "ByteFallback"}}, {{"type", "Fuse"}}})}};
  j["model"] = {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array({"a b"})},
                {"unk_token", with_unk ? json("<unk>") : json(nullptr)}, {"byte_fallback", byte_fallback}};
  return j;
}

TEST(TokenizerTiny, ByteFallbackOnAndOff) {
  ling::Tokenizer on = make(fallback_json(true, true));
  EXPECT_EQ(on.encode("ab\xC3\xA9" "a"), (Ids{259, 1 + 0xC3, 1 + 0xA9, 257}));  // é = C3 A9
  EXPECT_EQ(on.decode({259, 1 + 0xC3, 1 + 0xA9, 257}), "ab\xC3\xA9" "a");
  ling::Tokenizer unk = make(fallback_json(false, true));
  EXPECT_EQ(unk.encode("ab\xC3\xA9" "a"), (Ids{259, 0, 257}));
  ling::Tokenizer drop = make(fallback_json(false, false));
  EXPECT_EQ(drop.encode("ab\xC3\xA9" "a"), (Ids{259, 257}));
}

TEST(TokenizerTiny, IgnoreMerges) {
  json j = byte_level_json({{"a", "b"}}, true);  // ab 256
  j["model"]["vocab"]["abc"] = 257;              // reachable only as a whole word
  EXPECT_EQ(make(j).encode("abc"), (Ids{256, 'c'}));
  j["model"]["ignore_merges"] = true;
  EXPECT_EQ(make(j).encode("abc"), (Ids{257}));
  EXPECT_EQ(make(j).encode("abcab"), (Ids{256, 'c', 256}));
}

TEST(TokenizerTiny, SplitSequenceAndNfc) {
  json j = byte_level_json({{"1", "2"}, {"x", "1"}}, true);  // 12 -> 256, x1 -> 257
  j["pre_tokenizer"] = {{"type", "Sequence"},
                        {"pretokenizers", json::array({{{"type", "Split"}, {"pattern", {{"Regex", "\\p{N}"}}},
                                                        {"behavior", "Isolated"}, {"invert", false}},
                                                       {{"type", "ByteLevel"}, {"add_prefix_space", false},
                                                        {"use_regex", false}}})}};
  ling::Tokenizer t = make(j);
  EXPECT_EQ(t.encode("x12"), (Ids{'x', '1', '2'}));  // single digits are isolated before merging
  j["pre_tokenizer"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", false}};
  EXPECT_EQ(make(j).encode("x12"), (Ids{'x', 256}));  // without the split, "1 2" (rank 0) merges
  EXPECT_EQ(make(j).encode("x1"), (Ids{257}));
  j["normalizer"] = {{"type", "NFC"}};
  ling::Tokenizer n = make(j);
  EXPECT_EQ(n.encode("e\xCC\x81"), (Ids{0xC3, 0xA9}));  // e + U+0301 -> U+00E9 (C3 A9)
  EXPECT_EQ(t.encode("e\xCC\x81"), (Ids{'e', 0xCC, 0x81}));
}

TEST(TokenizerTiny, UnsupportedKindsAreClearErrors) {
  auto expect_error = [](const json& j, const std::string& needle) {
    try {
      make(j);
      ADD_FAILURE() << "no error for " << needle;
    } catch (const ling::Error& e) {
      std::string msg = e.what();
      EXPECT_NE(msg.find("tiny/tokenizer.json"), std::string::npos) << msg;
      EXPECT_NE(msg.find(needle), std::string::npos) << msg;
    }
  };
  json j = byte_level_json(kHello, true);
  json w = j; w["model"]["type"] = "WordPiece";
  expect_error(w, "model.type 'WordPiece'");
  json u = j; u["model"]["type"] = "Unigram";
  expect_error(u, "model.type 'Unigram'");
  json n = j; n["normalizer"] = {{"type", "Lowercase"}};
  expect_error(n, "normalizer.type 'Lowercase'");
  json p = j; p["pre_tokenizer"] = {{"type", "Metaspace"}};
  expect_error(p, "pre_tokenizer.type 'Metaspace'");
  json s = j; s["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", json::array({{{"type", "Whitespace"}}})}};
  expect_error(s, "pre_tokenizer.pretokenizers[0].type 'Whitespace'");
  json m = j; m["model"]["merges"][0] = json::array({"h", "zz"});
  expect_error(m, "model.merges[0]");
  json r = j; r["pre_tokenizer"] = {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}};
  expect_error(r, "pre_tokenizer.pattern.Regex");
  expect_error(json::array(), "top level");
}

TEST(TokenizerTiny, SanitizeUtf8MaximalSubparts) {
  const std::string R = "\xEF\xBF\xBD";
  EXPECT_EQ(ling::sanitize_utf8("a\xC3"), "a" + R);
  EXPECT_EQ(ling::sanitize_utf8("\xE2\x82" "b"), R + "b");                 // truncated 3-byte: one U+FFFD
  EXPECT_EQ(ling::sanitize_utf8("\xF0\x28\x8C\x28"), R + "(" + R + "(");
  EXPECT_EQ(ling::sanitize_utf8("\xED\xA0\x80"), R + R + R);                // surrogate
  EXPECT_EQ(ling::sanitize_utf8("\xC0\xAF"), R + R);                        // overlong
  EXPECT_EQ(ling::sanitize_utf8("\xF4\x90\x80\x80"), R + R + R + R);        // > U+10FFFF
  EXPECT_EQ(ling::sanitize_utf8("\xF0\x9F\x98\x80"), "\xF0\x9F\x98\x80");   // valid 4-byte
}

std::string random_utf8(std::mt19937& rng, size_t n_cp) {
  std::string s;
  for (size_t i = 0; i < n_cp; ++i) {
    uint32_t r = rng() % 100, cp;
    if (r < 50) cp = 0x20 + rng() % 0x5F;
    else if (r < 60) cp = " \t\n\r"[rng() % 4];
    else if (r < 75) cp = 0x80 + rng() % 0x780;
    else if (r < 92) cp = 0x800 + rng() % 0xF800;
    else cp = 0x10000 + rng() % 0xFFFFF;
    if (cp >= 0xD800 && cp < 0xE000) cp = 'x';
    if (cp < 0x80) s.push_back(static_cast<char>(cp));
    else if (cp < 0x800) { s.push_back(static_cast<char>(0xC0 | (cp >> 6))); s.push_back(static_cast<char>(0x80 | (cp & 0x3F))); }
    else if (cp < 0x10000) {
      s.push_back(static_cast<char>(0xE0 | (cp >> 12))); s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
      s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    } else {
      s.push_back(static_cast<char>(0xF0 | (cp >> 18))); s.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
      s.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F))); s.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
    }
  }
  return s;
}

TEST(TokenizerTiny, RoundTripRandomUtf8AndInvalidBytes) {
  json j = byte_level_json(kHello, true);
  j["added_tokens"] = json::array({{{"id", 300}, {"content", "<|x|>"}, {"special", true}}});
  ling::Tokenizer t = make(j);
  std::mt19937 rng(7);
  for (int it = 0; it < 300; ++it) {
    std::string s = random_utf8(rng, rng() % 60);
    if (it % 5 == 0) s += "<|x|>" + random_utf8(rng, 5);
    ASSERT_EQ(t.decode(t.encode(s)), s) << "iteration " << it;
  }
  for (int it = 0; it < 300; ++it) {  // arbitrary bytes: invalid sequences become U+FFFD, the rest survives
    std::string s;
    for (size_t k = rng() % 40; k > 0; --k) s.push_back(static_cast<char>(rng() & 0xFF));
    ASSERT_EQ(t.decode(t.encode(s)), ling::sanitize_utf8(s)) << "iteration " << it;
  }
  // A byte token alone decodes to U+FFFD.
  EXPECT_EQ(t.decode({0xC3}), "\xEF\xBF\xBD");
  EXPECT_THROW(t.decode({9999}), ling::Error);
}

}  // namespace
