// `ling run MODEL`: prefill a prompt and generate with the fixtures' decode protocol (ling/engine/generate.h).
// Prompt from --prompt-ids (whitespace-separated ids, or a safetensors file's `input_ids`), --prompt (raw text)
// or --chat (one user message in the Ling chat format; needs tokenizer.json in MODEL). Streams the generated
// ids (with --prompt-ids) or text to stdout, prints prefill/decode throughput to stderr, optionally dumps
// logits and intermediates under the golden names (--dump, --dump-hidden). --prompts FILE runs one request per
// line through the continuous batcher (ling/engine/batcher.h: --max-batch in flight, chunked prefill) and prints
// one JSON line per finished request plus a throughput line.
#include <algorithm>
#include <climits>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iostream>
#include <sstream>

#include "commands.h"
#include "ling/core/error.h"
#include "ling/core/safetensors.h"
#include "ling/engine/batcher.h"
#include "ling/engine/generate.h"
#include "ling/engine/launch.h"
#include <nlohmann/json.hpp>
#include "ling/tokenizer/chat.h"
#include "ling/tokenizer/tokenizer.h"

namespace ling {
namespace {

struct RunOptions {
  std::string model;
  std::string prompt_ids;
  std::string prompt;
  std::string chat;
  std::string system;
  int64_t max_new_tokens = 64;
  float temperature = 0.0f;
  float top_p = 1.0f;
  int64_t top_k = 0;
  uint64_t seed = 0;
  std::string backend = "cpu";
  std::string weight_dtype = "auto";  // --weight-dtype (cuda)
  int threads = 0;
  std::string decay;
  std::string dump;
  bool dump_hidden = false;
  bool ignore_eos = false;
  std::string prompts;           // --prompts FILE: one text prompt per line, batched
  int64_t max_batch = 16;        // --max-batch
  int64_t prefill_chunk = 0;     // --prefill-chunk (0: the backend's limit; 512 with --prompts)
  int64_t tp = 1, ep = 1;        // --tp, --ep
  bool dp_attention = false;     // --dp-attention
  LaunchEnv launch;              // from the environment (multi-process launch)
  bool quiet = false;            // ranks other than 0 of a multi-process launch print nothing
};

std::vector<int32_t> read_prompt_ids(const std::string& path) {
  const bool st = path.size() > 12 && path.compare(path.size() - 12, 12, ".safetensors") == 0;
  std::vector<int32_t> ids;
  if (st) {
    auto f = SafetensorsFile::open(path);
    const TensorInfo* t = f->find("input_ids");
    LING_CHECK(t, path, ": no tensor 'input_ids'");
    LING_CHECK(t->dtype == DType::I64 || t->dtype == DType::I32, path, ": tensor 'input_ids' has dtype ",
               dtype_name(t->dtype), ", expected I64 or I32");
    LING_CHECK(t->shape.size() == 1 || (t->shape.size() == 2 && t->shape[0] == 1), path,
               ": tensor 'input_ids' has shape ", t->shape_str(), ", expected [T] or [1, T]");
    for (int64_t i = 0; i < t->numel(); ++i) {
      int64_t v = 0;
      if (t->dtype == DType::I64) std::memcpy(&v, t->data + i * 8, 8);
      else { int32_t w; std::memcpy(&w, t->data + i * 4, 4); v = w; }
      LING_CHECK(v >= 0 && v <= INT32_MAX, path, ": input_ids[", i, "] = ", v, " is not a valid token id");
      ids.push_back(int32_t(v));
    }
  } else {
    std::ifstream in(path);
    LING_CHECK(in, path, ": cannot open the prompt ids file");
    std::string word;
    while (in >> word) {
      size_t used = 0;
      long long v = -1;
      try { v = std::stoll(word, &used); } catch (const std::exception&) { used = 0; }
      LING_CHECK(used == word.size() && v >= 0 && v <= INT32_MAX, path, ": '", word, "' is not a token id");
      ids.push_back(int32_t(v));
    }
  }
  LING_CHECK(!ids.empty(), path, ": no prompt ids");
  return ids;
}

std::unique_ptr<Engine> open_engine(const RunOptions& o) {
  EngineOptions eo;
  eo.backend = o.backend;
  eo.backend_options.threads = o.threads;
  eo.backend_options.weight_dtype = o.weight_dtype;
  eo.decay = o.decay;
  eo.tp = o.tp;
  eo.ep = o.ep;
  eo.dp_attention = o.dp_attention;
  eo.launch = o.launch;
  eo.prefill_chunk = o.prefill_chunk;
  return Engine::open(o.model, eo);
}

// --prompts: every non-empty line is a request (seed + line index when sampling); JSON lines in finish order.
int run_batched(const RunOptions& o, Engine& engine) {
  Tokenizer tok = Tokenizer::load(o.model);
  const ChatTemplate chat = ChatTemplate::load(o.model, tok);
  std::ifstream in(o.prompts);
  LING_CHECK(in, o.prompts, ": cannot open the prompts file");
  BatcherOptions bo;
  bo.max_batch = o.max_batch;
  bo.prefill_chunk = o.prefill_chunk > 0 ? o.prefill_chunk : 512;
  ContinuousBatcher b(engine, bo);
  std::string line;
  std::vector<std::string> texts;
  while (std::getline(in, line)) {
    if (line.empty()) continue;
    BatchRequest r;
    r.prompt = tok.encode(line);
    LING_CHECK(!r.prompt.empty(), o.prompts, ": line ", texts.size() + 1, " encodes to no tokens");
    r.options.max_new_tokens = o.max_new_tokens;
    r.options.temperature = o.temperature;
    r.options.top_k = o.top_k;
    r.options.top_p = o.top_p;
    r.options.seed = o.seed + texts.size();
    if (!o.ignore_eos)
      for (int32_t s : chat.stop_ids()) r.options.stop_ids.push_back(s);
    b.submit(std::move(r));
    texts.push_back(line);
  }
  LING_CHECK(!texts.empty(), o.prompts, ": no prompts");
  while (!b.idle())
    b.step({}, [&](const BatchResult& r) {
      std::vector<int32_t> ids(r.ids.begin(), r.ids.end());
      std::string text;
      try { text = tok.decode(ids); } catch (const Error&) { text = ""; }
      std::cout << nlohmann::json{{"id", r.id}, {"prompt", texts[size_t(r.id)]}, {"text", text}, {"ids", r.ids},
                                  {"stopped", r.stopped}, {"first_token_s", r.first_token_seconds},
                                  {"finish_s", r.finish_seconds}, {"finish_step", r.finish_step}}.dump()
                << std::endl;
    });
  const BatcherStats& st = b.stats();
  if (o.quiet) return 0;
  std::fprintf(stderr, "%zu requests, %lld prompt + %lld generated tokens in %lld steps, %.3f s (%.1f tok/s), "
               "at most %lld in flight\n", texts.size(), (long long)st.prompt_tokens, (long long)st.generated_tokens,
               (long long)st.steps, st.seconds, double(st.prompt_tokens + st.generated_tokens) / std::max(st.seconds, 1e-9),
               (long long)st.max_in_flight);
  return 0;
}

int run(const RunOptions& o) {
  const int modes = int(!o.prompt_ids.empty()) + int(!o.prompt.empty()) + int(!o.chat.empty()) + int(!o.prompts.empty());
  LING_CHECK(modes == 1, "give exactly one of --prompt-ids, --prompt, --chat, --prompts");
  LING_CHECK(o.max_batch >= 1 && o.prefill_chunk >= 0, "--max-batch must be at least 1 and --prefill-chunk at least 0");
  LING_CHECK(o.temperature >= 0.0f, "--temperature must be >= 0");
  LING_CHECK(o.top_p > 0.0f && o.top_p <= 1.0f, "--top-p must be in (0, 1]");
  LING_CHECK(o.top_k >= 0, "--top-k must be >= 0");
  LING_CHECK(o.max_new_tokens >= 0, "--max-new-tokens must be >= 0");
  LING_CHECK(o.backend == "cpu" || o.backend == "cuda", "--backend must be cpu or cuda");

  if (!o.prompts.empty()) return run_batched(o, *open_engine(o));
  std::unique_ptr<Tokenizer> tok;
  std::vector<int32_t> prompt;
  GenerateOptions g;
  if (!o.prompt_ids.empty()) {
    prompt = read_prompt_ids(o.prompt_ids);
  } else {
    tok = std::make_unique<Tokenizer>(Tokenizer::load(o.model));
    const ChatTemplate chat = ChatTemplate::load(o.model, *tok);
    if (!o.chat.empty()) {
      std::vector<ChatMessage> msgs;
      if (!o.system.empty()) msgs.push_back({"system", o.system});
      msgs.push_back({"user", o.chat});
      prompt = chat.encode(*tok, msgs);
    } else {
      prompt = tok->encode(o.prompt);
    }
    LING_CHECK(!prompt.empty(), "the prompt encodes to no tokens");
    if (!o.ignore_eos)
      for (int32_t s : chat.stop_ids()) g.stop_ids.push_back(s);
  }

  auto engine = open_engine(o);

  g.max_new_tokens = o.max_new_tokens;
  g.temperature = o.temperature;
  g.top_k = o.top_k;
  g.top_p = o.top_p;
  g.seed = o.seed;
  g.collect_hidden = o.dump_hidden;
  g.keep_logits = !o.dump.empty() || o.dump_hidden;  // otherwise tokens are picked where the logits are
  // Streaming: ids as numbers without a tokenizer; with one, text as soon as the pending ids decode to complete
  // UTF-8 (byte-level BPE decodes token by token). Ids the tokenizer does not know print as [id].
  bool first = true;
  std::vector<int32_t> pending;
  auto on_token = [&](int64_t id) {
    if (!tok) {
      std::cout << (first ? "" : " ") << id << std::flush;
      first = false;
      return;
    }
    if (id >= tok->vocab_size()) {
      std::cout << "[" << id << "]" << std::flush;
      pending.clear();
      return;
    }
    pending.push_back(int32_t(id));
    std::string text;
    try {
      text = tok->decode(pending);
    } catch (const Error&) {
      std::cout << "[" << id << "]" << std::flush;
      pending.clear();
      return;
    }
    const bool incomplete = text.size() >= 3 && text.compare(text.size() - 3, 3, "\xEF\xBF\xBD") == 0;
    if (incomplete && pending.size() < 4) return;
    std::cout << text << std::flush;
    pending.clear();
  };
  const GenerateResult r = generate(*engine, prompt, g, on_token);
  std::cout << std::endl;  // flush before the throughput line on stderr
  if (o.quiet) return 0;
  if (!o.dump.empty()) write_dump(o.dump, r);
  std::fprintf(stderr, "prefill: %lld tokens in %.3f s (%.1f tok/s); decode: %zu tokens in %.3f s (%.1f tok/s)\n",
               (long long)r.prompt_tokens, r.prefill_seconds, r.prompt_tokens / std::max(r.prefill_seconds, 1e-9),
               r.decode_ids.size(), r.decode_seconds, double(r.decode_ids.size()) / std::max(r.decode_seconds, 1e-9));
  return 0;
}

// Multi-process launch (launch.h): --tp defaults to the world size; ranks other than 0 stay silent; a failing
// rank records its error for the others before exiting.
int run_entry(const RunOptions& given) {
  RunOptions o = given;
  o.launch = launch_env_from_environment();
  if (o.launch.multi()) {
    LING_CHECK(o.backend == "cuda", "a ", o.launch.world, "-process launch runs one CUDA rank per process: pass --backend cuda");
    if (o.tp == 1) o.tp = o.launch.world;
    o.quiet = o.launch.rank != 0;
    if (o.quiet) std::cout.setstate(std::ios::badbit);
  }
  try {
    return run(o);
  } catch (const Error& e) {
    report_rank_failure(o.launch, e.what());
    throw;
  }
}

}  // namespace

Command register_run(CLI::App& app) {
  auto o = std::make_shared<RunOptions>();
  Command c;
  c.app = app.add_subcommand("run", "Generate from a prompt (fixture decode protocol), or from many (--prompts, continuous batching)");
  c.app->add_option("model", o->model, "Model folder (config.json + safetensors [+ tokenizer.json])")->required();
  c.app->add_option("--prompt-ids", o->prompt_ids, "Prompt ids: whitespace-separated file, or a .safetensors with input_ids");
  c.app->add_option("--prompt", o->prompt, "Raw prompt text (needs tokenizer.json)");
  c.app->add_option("--chat", o->chat, "One user message in the Ling chat format (needs tokenizer.json)");
  c.app->add_option("--system", o->system, "System message for --chat");
  c.app->add_option("--max-new-tokens", o->max_new_tokens, "Decode steps (default 64)");
  c.app->add_option("--temperature", o->temperature, "0 = greedy (default)");
  c.app->add_option("--top-p", o->top_p, "Nucleus sampling mass (default 1 = off)");
  c.app->add_option("--top-k", o->top_k, "Sample among the k best (default 0 = off)");
  c.app->add_option("--seed", o->seed, "Sampling seed (default 0)");
  c.app->add_option("--backend", o->backend, "cpu | cuda (default cpu)");
  c.app->add_option("--weight-dtype", o->weight_dtype,
                    "cuda: projection weights on the device: auto (as stored) | bf16 | f32")
      ->check(CLI::IsMember({"auto", "bf16", "f32"}));
  c.app->add_option("--threads", o->threads, "CPU threads (default: all)");
  c.app->add_option("--lightning-decay", o->decay, "Lightning layer decay f(l): hf (default) | engine | mlx");
  c.app->add_option("--dump", o->dump, "Write logits/decode_ids/decode_logits to this .safetensors");
  c.app->add_flag("--dump-hidden", o->dump_hidden, "Also dump hidden_L, final_norm, router_topk_L, router_weight_L");
  c.app->add_flag("--ignore-eos", o->ignore_eos, "Do not stop at the stop tokens (text modes)");
  c.app->add_option("--tp", o->tp, "Tensor-parallel ranks (cpu: simulated ranks, the oracle of the layout)")
      ->check(CLI::PositiveNumber);
  c.app->add_option("--ep", o->ep, "Expert-parallel rank groups (divides --tp)")->check(CLI::PositiveNumber);
  c.app->add_flag("--dp-attention", o->dp_attention,
                  "With --tp: replicate attention and spread the sequences over the ranks (cpu ranks)");
  c.app->add_option("--prompts", o->prompts, "One text prompt per line, run together (continuous batching)");
  c.app->add_option("--max-batch", o->max_batch, "--prompts: requests in flight (default 16)");
  c.app->add_option("--prefill-chunk", o->prefill_chunk,
                    "Prompt tokens per forward call (default 0: the backend's limit, 8192 on cuda; --prompts: 512)");
  c.run = [o](Context&) -> int { return run_entry(*o); };
  return c;
}

}  // namespace ling
