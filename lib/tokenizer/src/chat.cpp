// Ling 2.x chat format and stop ids (architecture.md §6). See chat.h for the exact layout.
#include "ling/tokenizer/chat.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "ling/core/error.h"

namespace ling {
namespace {

using json = nlohmann::json;

bool read_json(const std::filesystem::path& p, json& out) {
  std::ifstream f(p);
  if (!f.good()) return false;
  try {
    out = json::parse(f);
  } catch (const json::exception& e) {
    LING_THROW(p.string(), ": not valid JSON: ", e.what());
  }
  return true;
}

std::string role_name(const std::string& r) {
  std::string u = r;
  std::transform(u.begin(), u.end(), u.begin(), [](unsigned char c) { return static_cast<char>(std::toupper(c)); });
  if (u == "SYSTEM") return "SYSTEM";
  if (u == "USER" || u == "HUMAN") return "HUMAN";
  if (u == "ASSISTANT") return "ASSISTANT";
  if (u == "TOOL" || u == "OBSERVATION") return "OBSERVATION";
  LING_THROW("chat: unknown role '", r, "' (expected system, user, assistant or tool)");
}

}  // namespace

ChatTemplate ChatTemplate::load(const std::string& model_dir, const Tokenizer& tokenizer) {
  namespace fs = std::filesystem;
  ChatTemplate ct;
  fs::path dir(model_dir);
  if (!fs::is_directory(dir)) dir = dir.parent_path();
  json gen, tcfg;
  bool have_eos = false;
  if (read_json(dir / "generation_config.json", gen) && gen.contains("eos_token_id")) {
    const json& e = gen["eos_token_id"];
    auto add = [&](const json& v) {
      LING_CHECK(v.is_number_integer(), (dir / "generation_config.json").string(), ": eos_token_id is not an integer or a list of integers");
      ct.stop_ids_.push_back(v.get<int32_t>());
    };
    if (e.is_array()) for (const json& v : e) add(v);
    else if (!e.is_null()) add(e);
    have_eos = !ct.stop_ids_.empty();
  }
  if (!have_eos && read_json(dir / "tokenizer_config.json", tcfg) && tcfg.contains("eos_token")) {
    const json& e = tcfg["eos_token"];
    std::string s = e.is_string() ? e.get<std::string>() : e.is_object() ? e.value("content", std::string()) : std::string();
    if (!s.empty()) {
      auto id = tokenizer.token_to_id(s);
      LING_CHECK(id.has_value(), (dir / "tokenizer_config.json").string(), ": eos_token '", s, "' is not in the vocabulary");
      ct.stop_ids_.push_back(*id);
    }
  }
  if (auto id = tokenizer.token_to_id("<|role_end|>")) ct.stop_ids_.push_back(*id);
  std::sort(ct.stop_ids_.begin(), ct.stop_ids_.end());
  ct.stop_ids_.erase(std::unique(ct.stop_ids_.begin(), ct.stop_ids_.end()), ct.stop_ids_.end());
  return ct;
}

std::string ChatTemplate::render(const std::vector<ChatMessage>& messages, bool add_generation_prompt) const {
  std::string out;
  for (const ChatMessage& m : messages) out += "<role>" + role_name(m.role) + "</role>" + m.content + "<|role_end|>";
  if (add_generation_prompt) out += "<role>ASSISTANT</role>";
  return out;
}

std::vector<int32_t> ChatTemplate::encode(const Tokenizer& tokenizer, const std::vector<ChatMessage>& messages,
                                          bool add_generation_prompt) const {
  return tokenizer.encode(render(messages, add_generation_prompt), true);
}

bool ChatTemplate::is_stop(int32_t id) const { return std::binary_search(stop_ids_.begin(), stop_ids_.end(), id); }

}  // namespace ling
