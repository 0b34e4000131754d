// Tensor schema: the tensors a checkpoint of a given config must hold, with their shapes, in the official
// Hugging Face names (architecture.md §4). One table per layer kind; used by the engine loader, by
// `ling inspect --check-weights` and by `ling synth` (which also reads `role` to choose an initialisation).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "ling/model/config.h"

namespace ling {

enum class TensorRole {
  Embedding,     // model.word_embeddings.weight / lm_head.weight
  Linear,        // a 2-D projection [out, in]
  Norm,          // an RMSNorm / GroupRMSNorm weight (ones-like)
  Bias,          // a projection bias
  Router,        // mlp.gate.weight [E, H] (computed in fp32)
  RouterBias,    // mlp.gate.expert_bias [E] (selection only)
};

struct TensorSpec {
  std::string name;            // e.g. "model.layers.3.attention.kv_a_proj_with_mqa.weight"
  std::vector<int64_t> shape;  // as stored, [out, in]
  TensorRole role = TensorRole::Linear;
  int layer = -1;              // decoder layer index, -1 for global tensors
  bool required = true;        // false for tensors that may be absent (e.g. lm_head when tied)
};

// Every tensor of the model in a stable order (globals, then layer by layer). MTP layers only when asked.
std::vector<TensorSpec> tensor_schema(const ModelConfig& config, bool include_mtp = false);

}  // namespace ling
