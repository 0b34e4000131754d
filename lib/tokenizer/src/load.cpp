// Loading a Hugging Face tokenizer.json (eval.md §7.2): BPE model (vocab, merges in "a b" and ["a","b"]
// spellings, unk_token, byte_fallback, ignore_merges), added_tokens, normalizer (null, NFC, Sequence),
// pre_tokenizer (Split, ByteLevel, Sequence), decoder (ByteLevel, ByteFallback, Fuse, Sequence, null).
// Anything else is one ling::Error naming the file and the JSON field.
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "internal.h"
#include "ling/core/error.h"

namespace ling {
namespace {

using json = nlohmann::json;

std::string type_of(const json& j) { return j.is_object() && j.contains("type") && j["type"].is_string() ? j["type"].get<std::string>() : ""; }

void load_normalizer(Tokenizer::Impl& t, const json& j, const std::string& field) {
  if (j.is_null()) return;
  std::string ty = type_of(j);
  if (ty == "NFC") { t.normalize_nfc = true; return; }
  if (ty == "Sequence") {
    LING_CHECK(j.contains("normalizers") && j["normalizers"].is_array(), t.source, ": ", field,
               ".normalizers: missing or not a list");
    size_t i = 0;
    for (const json& n : j["normalizers"]) load_normalizer(t, n, cat(field, ".normalizers[", i++, "]"));
    return;
  }
  LING_THROW(t.source, ": ", field, ".type '", ty, "' is not supported (supported: null, NFC, Sequence)");
}

void load_pre(Tokenizer::Impl& t, const json& j, const std::string& field) {
  if (j.is_null()) return;
  std::string ty = type_of(j);
  if (ty == "Sequence") {
    LING_CHECK(j.contains("pretokenizers") && j["pretokenizers"].is_array(), t.source, ": ", field,
               ".pretokenizers: missing or not a list");
    size_t i = 0;
    for (const json& p : j["pretokenizers"]) load_pre(t, p, cat(field, ".pretokenizers[", i++, "]"));
    return;
  }
  tok::PreStep st;
  if (ty == "Split") {
    st.kind = tok::PreStep::Split;
    const json& pat = j.value("pattern", json());
    if (pat.is_object() && pat.contains("Regex") && pat["Regex"].is_string()) {
      st.regex = std::make_unique<tok::Regex>(pat["Regex"].get<std::string>(), cat(t.source, ": ", field, ".pattern.Regex"));
    } else if (pat.is_object() && pat.contains("String") && pat["String"].is_string()) {
      st.literal = pat["String"].get<std::string>();
    } else {
      LING_THROW(t.source, ": ", field, ".pattern: expected {\"Regex\": ...} or {\"String\": ...}");
    }
    std::string b = j.value("behavior", std::string("Isolated"));
    if (b == "Isolated") st.behavior = tok::SplitBehavior::Isolated;
    else if (b == "Removed") st.behavior = tok::SplitBehavior::Removed;
    else if (b == "MergedWithPrevious") st.behavior = tok::SplitBehavior::MergedWithPrevious;
    else if (b == "MergedWithNext") st.behavior = tok::SplitBehavior::MergedWithNext;
    else if (b == "Contiguous") st.behavior = tok::SplitBehavior::Contiguous;
    else LING_THROW(t.source, ": ", field, ".behavior '", b, "' is not a known split behaviour");
    st.invert = j.value("invert", false);
  } else if (ty == "ByteLevel") {
    st.kind = tok::PreStep::ByteLevel;
    st.add_prefix_space = j.value("add_prefix_space", false);
    if (j.value("use_regex", true)) st.regex = std::make_unique<tok::Regex>(tok::kGpt2Pattern, "GPT-2 pattern");
    t.model.byte_level = true;
  } else {
    LING_THROW(t.source, ": ", field, ".type '", ty, "' is not supported (supported: Split, ByteLevel, Sequence)");
  }
  t.pre.push_back(std::move(st));
}

void load_decoder(Tokenizer::Impl& t, const json& j, const std::string& field) {
  if (j.is_null()) return;
  std::string ty = type_of(j);
  if (ty == "ByteLevel") t.decode_byte_level = true;
  else if (ty == "ByteFallback") t.decode_byte_fallback = true;
  else if (ty == "Fuse") {}
  else if (ty == "Sequence") {
    LING_CHECK(j.contains("decoders") && j["decoders"].is_array(), t.source, ": ", field, ".decoders: missing");
    size_t i = 0;
    for (const json& d : j["decoders"]) load_decoder(t, d, cat(field, ".decoders[", i++, "]"));
  } else {
    LING_THROW(t.source, ": ", field, ".type '", ty, "' is not supported (supported: ByteLevel, ByteFallback, Fuse, Sequence)");
  }
}

void set_token(Tokenizer::Impl& t, int32_t id, const std::string& s, uint8_t kind) {
  if (static_cast<size_t>(id) >= t.id_to_token.size()) {
    t.id_to_token.resize(static_cast<size_t>(id) + 1);
    t.id_kind.resize(static_cast<size_t>(id) + 1, 0);
  }
  t.id_to_token[static_cast<size_t>(id)] = s;
  t.id_kind[static_cast<size_t>(id)] = std::max(t.id_kind[static_cast<size_t>(id)], kind);
}

void load_model(Tokenizer::Impl& t, const json& m) {
  const std::string& src = t.source;
  LING_CHECK(m.is_object(), src, ": field 'model' is missing or not an object");
  std::string ty = type_of(m);
  if (ty.empty() && m.contains("merges")) ty = "BPE";
  LING_CHECK(ty == "BPE", src, ": model.type '", ty, "' is not supported (only byte-level BPE)");
  LING_CHECK(m.contains("vocab") && m["vocab"].is_object(), src, ": model.vocab is missing or not an object");
  for (const std::string key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (m.contains(key) && m[key].is_string() && !m[key].get<std::string>().empty())
      LING_THROW(src, ": model.", key, " '", m[key].get<std::string>(), "' is not supported");
  }
  if (m.contains("dropout") && m["dropout"].is_number() && m["dropout"].get<double>() > 0)
    LING_THROW(src, ": model.dropout is not supported at inference");
  tok::Model& mod = t.model;
  mod.vocab.reserve(m["vocab"].size() * 2);
  for (auto it = m["vocab"].begin(); it != m["vocab"].end(); ++it) {
    LING_CHECK(it.value().is_number_integer(), src, ": model.vocab['", it.key(), "'] is not an integer id");
    int64_t id = it.value().get<int64_t>();
    LING_CHECK(id >= 0 && id < (1 << 30), src, ": model.vocab['", it.key(), "'] id ", id, " out of range");
    mod.vocab[it.key()] = static_cast<int32_t>(id);
    set_token(t, static_cast<int32_t>(id), it.key(), 1);
  }
  mod.byte_fallback = m.value("byte_fallback", false);
  mod.ignore_merges = m.value("ignore_merges", false);
  if (m.contains("unk_token") && m["unk_token"].is_string()) {
    auto it = mod.vocab.find(m["unk_token"].get<std::string>());
    LING_CHECK(it != mod.vocab.end(), src, ": model.unk_token '", m["unk_token"].get<std::string>(), "' is not in the vocab");
    mod.unk_id = it->second;
  }
  const json& merges = m.value("merges", json::array());
  LING_CHECK(merges.is_array(), src, ": model.merges is not a list");
  mod.merges.reserve(merges.size() * 2);
  int32_t rank = 0;
  for (const json& e : merges) {
    std::string a, b;
    if (e.is_string()) {
      const std::string& s = e.get_ref<const std::string&>();
      size_t sp = s.find(' ');
      LING_CHECK(sp != std::string::npos && s.find(' ', sp + 1) == std::string::npos, src, ": model.merges[", rank,
                 "] '", s, "' is not two tokens separated by one space");
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
      a = e[0].get<std::string>();
      b = e[1].get<std::string>();
    } else {
      LING_THROW(src, ": model.merges[", rank, "] is neither \"a b\" nor [\"a\", \"b\"]");
    }
    auto ia = mod.vocab.find(a), ib = mod.vocab.find(b), im = mod.vocab.find(a + b);
    LING_CHECK(ia != mod.vocab.end() && ib != mod.vocab.end(), src, ": model.merges[", rank, "] uses a token not in the vocab");
    LING_CHECK(im != mod.vocab.end(), src, ": model.merges[", rank, "] result '", a + b, "' is not in the vocab");
    uint64_t key = (static_cast<uint64_t>(static_cast<uint32_t>(ia->second)) << 32) | static_cast<uint32_t>(ib->second);
    mod.merges.emplace(key, tok::MergeValue{rank, im->second});  // a repeated pair keeps its first rank
    ++rank;
  }
}

void load_added(Tokenizer::Impl& t, const json& j) {
  if (j.is_null()) return;
  LING_CHECK(j.is_array(), t.source, ": added_tokens is not a list");
  size_t i = 0;
  for (const json& a : j) {
    LING_CHECK(a.is_object() && a.contains("id") && a["id"].is_number_integer() && a.contains("content") &&
                   a["content"].is_string(),
               t.source, ": added_tokens[", i, "] needs an integer 'id' and a string 'content'");
    AddedToken tk;
    int64_t id = a["id"].get<int64_t>();
    LING_CHECK(id >= 0 && id < (1 << 30), t.source, ": added_tokens[", i, "].id ", id, " out of range");
    tk.id = static_cast<int32_t>(id);
    tk.content = a["content"].get<std::string>();
    LING_CHECK(!tk.content.empty(), t.source, ": added_tokens[", i, "].content is empty");
    tk.special = a.value("special", false);
    tk.lstrip = a.value("lstrip", false);
    tk.rstrip = a.value("rstrip", false);
    tk.single_word = a.value("single_word", false);
    tk.normalized = a.value("normalized", !tk.special);
    set_token(t, tk.id, tk.content, tk.special ? 3 : 2);
    t.added_ids[tk.content] = tk.id;
    t.added.push_back(std::move(tk));
    ++i;
  }
  for (size_t k = 0; k < t.added.size(); ++k)
    t.added_by_byte[static_cast<unsigned char>(t.added[k].content[0])].push_back(static_cast<int>(k));
  for (auto& v : t.added_by_byte)
    std::stable_sort(v.begin(), v.end(), [&](int x, int y) { return t.added[x].content.size() > t.added[y].content.size(); });
}

}  // namespace

Tokenizer Tokenizer::from_json(const std::string& text, const std::string& source) {
  auto impl = std::make_unique<Impl>();
  impl->source = source;
  json j;
  try {
    j = json::parse(text);
  } catch (const json::exception& e) {
    LING_THROW(source, ": not valid JSON: ", e.what());
  }
  LING_CHECK(j.is_object(), source, ": top level is not a JSON object");
  load_model(*impl, j.value("model", json()));
  load_added(*impl, j.value("added_tokens", json()));
  load_normalizer(*impl, j.value("normalizer", json()), "normalizer");
  load_pre(*impl, j.value("pre_tokenizer", json()), "pre_tokenizer");
  load_decoder(*impl, j.value("decoder", json()), "decoder");
  tok::Model& m = impl->model;
  for (int b = 0; b < 256; ++b) {
    auto it = m.vocab.find(impl->byte_map.byte_to_utf8[b]);
    m.byte_ids[b] = it == m.vocab.end() ? -1 : it->second;
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    auto f = m.vocab.find(name);
    m.fallback_ids[b] = f == m.vocab.end() ? -1 : f->second;
  }
  return Tokenizer(std::move(impl));
}

Tokenizer Tokenizer::load(const std::string& path) {
  namespace fs = std::filesystem;
  fs::path p(path);
  if (fs::is_directory(p)) p /= "tokenizer.json";
  std::ifstream f(p, std::ios::binary);
  LING_CHECK(f.good(), p.string(), ": cannot open tokenizer file");
  std::ostringstream ss;
  ss << f.rdbuf();
  return from_json(ss.str(), p.string());
}

}  // namespace ling
