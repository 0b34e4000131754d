// `ling tokenize` end to end: encode (--text, --json, --tokens), decode, --chat and a clear error for a
// missing tokenizer, run through the built binary on a hand-made byte-level tokenizer.json.
#include <gtest/gtest.h>

#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

// Printable ASCII as byte tokens (id = byte), "Ġ" = space (32), merge "h i" -> 300, specials 400.. .
json cli_tokenizer() {
  json vocab = json::object();
  for (int b = 0x21; b <= 0x7E; ++b) vocab[std::string(1, static_cast<char>(b))] = b;
  vocab["\xC4\xA0"] = 32;
  vocab["hi"] = 300;
  json added = json::array();
  int id = 400;
  for (const char* t : {"<|endoftext|>", "<|role_end|>", "<role>", "</role>"})
    added.push_back({{"id", id++}, {"content", t}, {"special", true}});
  return {{"added_tokens", added},
          {"pre_tokenizer", {{"type", "ByteLevel"}, {"use_regex", true}}},
          {"decoder", {{"type", "ByteLevel"}}},
          {"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", json::array({"h i"})}}}};
}

std::pair<int, std::string> run(const std::string& args) {
  std::string cmd = std::string(LING_BINARY) + " --no-db " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return {-1, ""};
  std::string out;
  char buf[4096];
  while (size_t n = std::fread(buf, 1, sizeof(buf), p)) out.append(buf, n);
  int rc = ::pclose(p);
  return {WIFEXITED(rc) ? WEXITSTATUS(rc) : -1, out};
}

TEST(TokenizeCli, EncodeDecodeChat) {
  fs::path dir = fs::temp_directory_path() / ("ling_tokenize_cli_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  std::ofstream(dir / "tokenizer.json") << cli_tokenizer().dump();
  std::ofstream(dir / "generation_config.json") << json{{"eos_token_id", 400}}.dump();
  const std::string d = dir.string();

  auto [rc, out] = run("tokenize " + d + " --text 'hi A<|endoftext|>'");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(out, "300 32 65 400\n");
  std::tie(rc, out) = run("tokenize " + d + " --text 'hi' --json --tokens");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(json::parse(out), (json{{"ids", {300}}, {"count", 1}, {"tokens", {"hi"}}}));
  std::tie(rc, out) = run("tokenize " + d + " --decode '[300, 32, 65, 400]'");
  EXPECT_EQ(rc, 0) << out;
  EXPECT_EQ(out, "hi A<|endoftext|>\n");
  std::tie(rc, out) = run("tokenize " + d + " --text hi --chat");
  EXPECT_EQ(rc, 0) << out;
  std::string want = "402 72 85 77 65 78 403 300 401 402 65 83 83 73 83 84 65 78 84 403\n";  // HUMAN, hi, ASSISTANT
  EXPECT_EQ(out, want);
  std::tie(rc, out) = run("tokenize " + d + " --decode '1 x'");
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("not a token id"), std::string::npos) << out;
  std::tie(rc, out) = run("tokenize " + (dir / "nope").string() + " --text a");
  EXPECT_NE(rc, 0);
  EXPECT_NE(out.find("cannot open tokenizer file"), std::string::npos) << out;
  fs::remove_all(dir);
}

}  // namespace
