// Random-weight checkpoints in the real Hugging Face layout (`ling synth`): config.json with every key of the
// family (architecture.md §1), model.safetensors (or shards + model.safetensors.index.json, eval.md §7.1) with
// the tensors of ling::tensor_schema (architecture.md §4), a byte-level BPE tokenizer.json with the Ling
// special tokens, tokenizer_config.json and generation_config.json. Values come from the counter-based
// generator (generator.h): norms mean 1 std 0.1, mlp.gate.expert_bias std 0.5, router std 0.5/sqrt(in),
// biases std 0.1, every other tensor std 1/sqrt(in). Tensors are streamed (memory does not grow with the
// model) and the folder appears atomically (written as "<out>.tmp.<pid>", renamed at the end).
#pragma once
#include <cstdint>
#include <string>

#include "ling/core/dtype.h"

namespace ling::synth {

struct SynthOptions {
  std::string family;           // "ling-2.0" | "ring-linear" | "ling-2.5" (optional with a CONFIG.json preset)
  std::string preset = "tiny";  // "tiny" | "small" | path of a config.json to reproduce (dims cut down below)
  uint64_t seed = 1234;
  std::string dtype;            // "f32" | "bf16"; empty: the config's torch_dtype (CONFIG.json), else bf16
  std::string out;              // output folder (must not exist unless force)
  int64_t layers = 0;           // > 0: num_hidden_layers override
  int64_t experts = 0;          // > 0: num_experts override (top-k and groups adjusted to fit)
  int64_t vocab = 0;            // > 0: vocab_size override
  uint64_t shard_size = 2ull << 30;  // bytes per shard; one file when the model fits
  bool force = false;           // replace an existing output folder
  int threads = 0;              // generator threads (0 = OpenMP default)
};

struct SynthResult {
  std::string out;              // folder written
  int64_t tensors = 0;
  uint64_t bytes = 0;           // tensor bytes
  int shards = 1;
  int64_t parameters = 0;
};

// The config.json text the options describe (family template + preset + overrides). Throws ling::Error.
std::string make_config_json(const SynthOptions& options);
// A byte-level BPE tokenizer.json for `vocab_size` ids: 256 byte tokens (ids 0..255), deterministic merges of
// common English words, and the special tokens <|endoftext|> (= eos_id), <|role_end|>, <role>, </role>,
// <think>, </think> at the ids following eos_id (or preceding it when they would not fit below vocab_size).
// The pre-tokenizer is the Ling split regex (single digits) followed by ByteLevel.
std::string make_tokenizer_json(int64_t vocab_size, int64_t eos_id);
// tokenizer_config.json and generation_config.json for that tokenizer.
std::string make_tokenizer_config_json(int64_t eos_id, int64_t max_positions);
std::string make_generation_config_json(int64_t eos_id);
// Write the whole folder. Throws ling::Error naming the path on failure (the temporary folder is removed).
SynthResult write_synth(const SynthOptions& options);

// Parse "123", "500M", "2G", "1.5GB" (powers of 1024) into bytes; throws naming `what`.
uint64_t parse_size(const std::string& text, const std::string& what);

}  // namespace ling::synth
