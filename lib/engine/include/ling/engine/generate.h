// Generation with the fixtures' decode protocol (fixtures/*/README.md "Decode protocol"): prefill the prompt
// (logits of every prompt token), decode_ids[0] = pick(last prompt logits), then for i = 0..N−1 feed
// decode_ids[i] → decode_logits[i], decode_ids[i+1] = pick(decode_logits[i]) (the last pick is not kept).
// pick = greedy at temperature 0, else seeded sampling (ref::sample). Optionally collects the prefill
// intermediates under the golden names (hidden_L, final_norm, router_topk_L, router_weight_L) and writes a dump
// whose tensors compare directly with golden.safetensors.
#pragma once
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "ling/engine/engine.h"

namespace ling {

struct GenerateOptions {
  int64_t max_new_tokens = 16;
  float temperature = 0.0f;  // 0 = greedy
  int64_t top_k = 0;         // 0 = off
  float top_p = 1.0f;
  uint64_t seed = 0;
  std::vector<int64_t> stop_ids;  // stop after emitting one of these (the emitted id is kept)
  bool collect_hidden = false;    // hidden_L, final_norm, router_topk_L, router_weight_L of the prefill
  // false: the prompt's logits other than the last are not kept and every decode pick happens where the logits
  // are (Engine::forward_pick: on the device for CUDA), so logits / decode_logits stay empty. Same ids.
  bool keep_logits = true;
};

// A named host tensor of the dump: f32 or i64 values.
struct DumpTensor {
  std::vector<int64_t> shape;
  std::vector<float> f32;
  std::vector<int64_t> i64;
  bool is_int = false;
};

struct GenerateResult {
  int64_t prompt_tokens = 0, vocab = 0;
  std::vector<float> logits;         // [T, V] prompt logits
  std::vector<int64_t> decode_ids;   // [N]
  std::vector<float> decode_logits;  // [N, V]
  std::map<std::string, DumpTensor> hidden;  // golden names, when collect_hidden
  // input_ids [1, T] i64, rope_inv_freq [rd/2] (and rope_inv_freq_mla with MLA layers), lightning_slope_L [nh]
  // (the log decays g of each Lightning layer): the model's constants under the golden names.
  std::map<std::string, DumpTensor> constants;
  double prefill_seconds = 0.0, decode_seconds = 0.0;
  // The dump: logits [1, T, V], decode_ids [N], decode_logits [N, V], plus `hidden` and `constants`.
  std::map<std::string, DumpTensor> tensors() const;
};

// Runs the protocol on a fresh sequence. on_token(id) is called as soon as each decode id is known.
GenerateResult generate(Engine& engine, const std::vector<int32_t>& prompt, const GenerateOptions& options,
                        const std::function<void(int64_t)>& on_token = {});

// Write tensors() to a safetensors file (atomically).
void write_dump(const std::string& path, const GenerateResult& result);

}  // namespace ling
