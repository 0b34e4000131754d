// Ling chat format and stop ids (architecture.md §6): the rendered prompt is compared with the literal format,
// the role tags are encoded as added tokens, and the stop set merges generation_config.json eos ids (int or
// list), the tokenizer_config.json eos_token fallback and <|role_end|>.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <unistd.h>

#include "ling/core/error.h"
#include "ling/tokenizer/chat.h"

namespace {

using json = nlohmann::json;
namespace fs = std::filesystem;

json chat_tokenizer_json() {
  json vocab = json::object();
  for (int b = 0x21; b <= 0x7E; ++b) vocab[std::string(1, static_cast<char>(b))] = b;
  vocab["\xC4\xA0"] = 0x20;  // space
  json added = json::array();
  int id = 400;
  for (const char* t : {"<|endoftext|>", "<|role_end|>", "<role>", "</role>"})
    added.push_back({{"id", id++}, {"content", t}, {"special", true}});
  return {{"added_tokens", added},
          {"pre_tokenizer", {{"type", "ByteLevel"}, {"use_regex", true}}},
          {"decoder", {{"type", "ByteLevel"}}},
          {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array()}}}};
}

struct TempDir {
  fs::path path;
  TempDir() {
    path = fs::temp_directory_path() / ("ling_chat_test_" + std::to_string(::getpid()));
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
  void write(const std::string& name, const json& j) const { std::ofstream(path / name) << j.dump(); }
};

TEST(Chat, RenderAndEncode) {
  ling::Tokenizer tok = ling::Tokenizer::from_json(chat_tokenizer_json().dump(), "chat/tokenizer.json");
  TempDir dir;
  ling::ChatTemplate ct = ling::ChatTemplate::load(dir.path.string(), tok);
  std::vector<ling::ChatMessage> msgs = {{"system", "detailed thinking off"}, {"user", "Hi!"}};
  EXPECT_EQ(ct.render(msgs),
            "<role>SYSTEM</role>detailed thinking off<|role_end|><role>HUMAN</role>Hi!<|role_end|>"
            "<role>ASSISTANT</role>");
  EXPECT_EQ(ct.render({{"assistant", "ok"}, {"tool", "{}"}}, false),
            "<role>ASSISTANT</role>ok<|role_end|><role>OBSERVATION</role>{}<|role_end|>");
  std::vector<int32_t> ids = ct.encode(tok, {{"user", "Hi"}});
  std::vector<int32_t> want = {402, 'H', 'U', 'M', 'A', 'N', 403, 'H', 'i', 401, 402};
  for (char c : std::string("ASSISTANT")) want.push_back(c);
  want.push_back(403);
  EXPECT_EQ(ids, want);
  EXPECT_THROW(ct.render({{"narrator", "x"}}), ling::Error);
  // No config files: only <|role_end|>.
  EXPECT_EQ(ct.stop_ids(), (std::vector<int32_t>{401}));
}

TEST(Chat, StopIdsFromConfigs) {
  ling::Tokenizer tok = ling::Tokenizer::from_json(chat_tokenizer_json().dump(), "chat/tokenizer.json");
  TempDir dir;
  dir.write("generation_config.json", {{"eos_token_id", json::array({400, 77})}});
  EXPECT_EQ(ling::ChatTemplate::load(dir.path.string(), tok).stop_ids(), (std::vector<int32_t>{77, 400, 401}));
  dir.write("generation_config.json", {{"eos_token_id", 400}});
  ling::ChatTemplate ct = ling::ChatTemplate::load(dir.path.string(), tok);
  EXPECT_EQ(ct.stop_ids(), (std::vector<int32_t>{400, 401}));
  EXPECT_TRUE(ct.is_stop(401));
  EXPECT_FALSE(ct.is_stop(402));
  fs::remove(dir.path / "generation_config.json");
  dir.write("tokenizer_config.json", {{"eos_token", {{"content", "<|endoftext|>"}}}});
  EXPECT_EQ(ling::ChatTemplate::load(dir.path.string(), tok).stop_ids(), (std::vector<int32_t>{400, 401}));
  dir.write("tokenizer_config.json", {{"eos_token", "<nope>"}});
  EXPECT_THROW(ling::ChatTemplate::load(dir.path.string(), tok), ling::Error);
}

}  // namespace
