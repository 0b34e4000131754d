// `ling tokenize MODEL_OR_TOKENIZER`: encode text (--text / --file / stdin) or decode ids (--decode) with a
// model's tokenizer.json (architecture.md §6, eval.md §7.2); --chat wraps the text in the Ling chat format;
// --bench FILE measures single-thread encoding throughput. Read-only: the run is not recorded.
#include <chrono>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.h"
#include "ling/core/fs.h"
#include "ling/core/error.h"
#include "ling/tokenizer/chat.h"
#include "ling/tokenizer/tokenizer.h"

namespace ling {
namespace {

struct TokenizeOptions {
  std::string model;           // tokenizer.json or a model folder
  std::string text;            // --text
  std::string file;            // --file
  std::string decode;          // --decode "1 2 3"
  std::string bench;           // --bench FILE
  std::string system;          // --system (with --chat)
  bool chat = false;           // --chat
  bool no_special = false;     // --no-special
  bool tokens = false;         // --tokens: one "id<TAB>token" line per token
  bool json = false;           // --json
  int bench_seconds = 3;       // --bench-seconds
};

std::vector<int32_t> parse_ids(const std::string& s) {
  std::vector<int32_t> ids;
  std::string cur;
  auto flush = [&] {
    if (cur.empty()) return;
    try {
      size_t used = 0;
      long long v = std::stoll(cur, &used);
      LING_CHECK(used == cur.size() && v >= 0 && v < (1LL << 31), "--decode: '", cur, "' is not a token id");
      ids.push_back(static_cast<int32_t>(v));
    } catch (const std::logic_error&) {
      LING_THROW("--decode: '", cur, "' is not a token id");
    }
    cur.clear();
  };
  for (char c : s) {
    if (c == ' ' || c == ',' || c == '\t' || c == '\n' || c == '[' || c == ']') flush();
    else cur.push_back(c);
  }
  flush();
  return ids;
}

int run_bench(const Tokenizer& tok, const TokenizeOptions& o) {
  std::string text = read_file(o.bench);
  LING_CHECK(!text.empty(), o.bench, ": empty file");
  // The first pass starts with an empty pre-token cache ("cold"); later passes hit it ("warm").
  auto t0 = std::chrono::steady_clock::now();
  size_t tokens = tok.encode(text).size();
  double cold = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  size_t passes = 0;
  double secs = 0;
  t0 = std::chrono::steady_clock::now();
  do {
    tok.encode(text);
    ++passes;
    secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  } while (secs < o.bench_seconds);
  std::printf("%s: %zu bytes, %zu tokens; 1 thread: cold %.2f MB/s (%.0f tokens/s), warm cache %.2f MB/s "
              "(%zu passes)\n",
              o.bench.c_str(), text.size(), tokens, text.size() / cold / 1e6, tokens / cold,
              static_cast<double>(text.size()) * passes / secs / 1e6, passes);
  return 0;
}

int run_tokenize(const TokenizeOptions& o) {
  Tokenizer tok = Tokenizer::load(o.model);
  if (!o.bench.empty()) return run_bench(tok, o);
  if (!o.decode.empty()) {
    std::string text = tok.decode(parse_ids(o.decode));
    if (o.json) std::cout << nlohmann::json({{"text", text}}).dump() << "\n";
    else std::cout << text << "\n";
    return 0;
  }
  std::string text;
  if (!o.text.empty()) text = o.text;
  else if (!o.file.empty()) text = read_file(o.file);
  else { std::ostringstream ss; ss << std::cin.rdbuf(); text = ss.str(); }
  std::vector<int32_t> ids;
  if (o.chat) {
    ChatTemplate ct = ChatTemplate::load(o.model, tok);
    std::vector<ChatMessage> msgs;
    if (!o.system.empty()) msgs.push_back({"system", o.system});
    msgs.push_back({"user", text});
    ids = ct.encode(tok, msgs);
  } else {
    ids = tok.encode(text, !o.no_special);
  }
  if (o.json) {
    nlohmann::json j = {{"ids", ids}, {"count", ids.size()}};
    if (o.tokens) {
      nlohmann::json toks = nlohmann::json::array();
      for (int32_t id : ids) toks.push_back(tok.id_to_token(id));
      j["tokens"] = toks;
    }
    std::cout << j.dump() << "\n";
  } else if (o.tokens) {
    for (int32_t id : ids) std::cout << id << "\t" << nlohmann::json(tok.id_to_token(id)).dump() << "\n";
  } else {
    for (size_t i = 0; i < ids.size(); ++i) std::cout << (i ? " " : "") << ids[i];
    std::cout << "\n";
  }
  return 0;
}

}  // namespace

Command register_tokenize(CLI::App& app) {
  auto o = std::make_shared<TokenizeOptions>();
  Command c;
  c.app = app.add_subcommand("tokenize", "Encode text to token ids or decode ids with a model's tokenizer.json");
  c.app->add_option("model", o->model, "tokenizer.json or a model folder holding one")->required();
  auto* text = c.app->add_option("--text", o->text, "Text to encode (default: read stdin)");
  auto* file = c.app->add_option("--file", o->file, "Encode the contents of this file");
  auto* dec = c.app->add_option("--decode", o->decode, "Decode these ids (\"1 2 3\" or \"[1,2,3]\")");
  auto* bench = c.app->add_option("--bench", o->bench, "Measure single-thread encoding speed on this file");
  text->excludes(file)->excludes(dec)->excludes(bench);
  file->excludes(dec)->excludes(bench);
  dec->excludes(bench);
  c.app->add_option("--bench-seconds", o->bench_seconds, "Duration of --bench (default 3)")->check(CLI::Range(1, 600));
  c.app->add_flag("--chat", o->chat, "Wrap the text as a user message in the Ling chat format");
  c.app->add_option("--system", o->system, "System message for --chat");
  c.app->add_flag("--no-special", o->no_special, "Encode special tokens written in the text as plain text");
  c.app->add_flag("--tokens", o->tokens, "Print one 'id<TAB>token' line per token");
  c.app->add_flag("--json", o->json, "Print JSON: {\"ids\": [...], \"count\": N} (or {\"text\": ...} with --decode)");
  c.run = [o](Context&) -> int { return run_tokenize(*o); };
  c.record = false;
  return c;
}

}  // namespace ling
