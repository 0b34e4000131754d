// ModelTokenizer (adapters.h): ling::Tokenizer + ChatTemplate stop ids behind TokenizerLike.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "ling/core/error.h"
#include "ling/eval/adapters.h"
#include "ling/tokenizer/chat.h"

namespace ling::eval {

namespace {
std::string tokenizer_path(const std::string& model_dir) {
  std::filesystem::path p(model_dir);
  if (std::filesystem::is_directory(p)) p /= "tokenizer.json";
  LING_CHECK(std::filesystem::exists(p), p.string(), ": no tokenizer.json (ling eval needs the model's tokenizer)");
  return p.string();
}
}  // namespace

ModelTokenizer::ModelTokenizer(const std::string& model_dir)
    : tok_(Tokenizer::load(tokenizer_path(model_dir))), path_(tokenizer_path(model_dir)) {
  std::filesystem::path dir = std::filesystem::path(path_).parent_path();
  eos_ = ChatTemplate::load(dir.string(), tok_).stop_ids();
  known_.assign(static_cast<size_t>(tok_.vocab_size()), false);
  for (int64_t id = 0; id < tok_.vocab_size(); ++id) {
    try {
      tok_.id_to_token(static_cast<int32_t>(id));
      known_[size_t(id)] = true;
    } catch (const Error&) {
    }
  }
  std::ifstream f(dir / "tokenizer_config.json");
  if (f.good()) {
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(f);
    } catch (const std::exception& e) {
      LING_THROW((dir / "tokenizer_config.json").string(), ": not valid JSON (", e.what(), ")");
    }
    if (j.value("add_bos_token", false) && j.contains("bos_token")) {
      const auto& b = j["bos_token"];
      std::string content = b.is_string() ? b.get<std::string>() : (b.is_object() ? b.value("content", "") : "");
      auto id = tok_.token_to_id(content);
      LING_CHECK(id.has_value(), (dir / "tokenizer_config.json").string(), ": bos_token '", content,
                 "' is not in the vocabulary");
      bos_ = *id;
    }
  }
}

std::vector<int32_t> ModelTokenizer::encode(const std::string& text) const { return tok_.encode(text, false); }

// Ids the tokenizer does not know (a model may emit any id below its vocab_size) decode to U+FFFD.
std::string ModelTokenizer::decode(std::span<const int32_t> ids) const {
  std::string out;
  std::vector<int32_t> run;
  for (int32_t id : ids) {
    if (id >= 0 && static_cast<size_t>(id) < known_.size() && known_[size_t(id)]) {
      run.push_back(id);
      continue;
    }
    if (!run.empty()) out += tok_.decode(run), run.clear();
    out += "\xEF\xBF\xBD";
  }
  if (!run.empty()) out += tok_.decode(run);
  return out;
}

}  // namespace ling::eval
