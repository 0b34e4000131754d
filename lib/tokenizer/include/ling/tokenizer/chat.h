// ChatTemplate: the Ling 2.x chat format and stop-token set (architecture.md §6).
//   <role>SYSTEM</role>{text}<|role_end|><role>HUMAN</role>{text}<|role_end|><role>ASSISTANT</role>
// Roles: system -> SYSTEM, user/human -> HUMAN, assistant -> ASSISTANT, tool/observation -> OBSERVATION.
// This is the plain-message subset of the model's chat_template.jinja (no tool-call or multi-step logic).
// Stop ids: every eos_token_id of generation_config.json (int or list), else the eos_token of
// tokenizer_config.json (string or {"content": ...}), plus <|role_end|> when the vocabulary holds it.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "ling/tokenizer/tokenizer.h"

namespace ling {

struct ChatMessage {
  std::string role;     // "system" | "user" | "assistant" | "tool" (also the upper-case Ling names)
  std::string content;
};

class ChatTemplate {
 public:
  // `model_dir`: folder with generation_config.json / tokenizer_config.json (either may be absent).
  static ChatTemplate load(const std::string& model_dir, const Tokenizer& tokenizer);

  // The prompt text; with add_generation_prompt it ends in "<role>ASSISTANT</role>". Unknown roles throw.
  std::string render(const std::vector<ChatMessage>& messages, bool add_generation_prompt = true) const;
  // render() then Tokenizer::encode(..., allow_special = true).
  std::vector<int32_t> encode(const Tokenizer& tokenizer, const std::vector<ChatMessage>& messages,
                              bool add_generation_prompt = true) const;
  const std::vector<int32_t>& stop_ids() const { return stop_ids_; }  // sorted, unique
  bool is_stop(int32_t id) const;

 private:
  std::vector<int32_t> stop_ids_;
};

}  // namespace ling
