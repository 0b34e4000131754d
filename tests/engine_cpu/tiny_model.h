// Builds small random checkpoints in a temporary folder for engine tests: config.json text in, tensors from
// tensor_schema() with role-dependent random values (projections N(0, 1/in), norms 1 + 0.1·N, router bias
// 0.5·N), written with write_safetensors. Optional corruption hooks for the loader's error tests.
#pragma once
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <unistd.h>

#include "ling/core/safetensors.h"
#include "ling/engine/engine.h"
#include "ling/model/config.h"
#include "ling/model/schema.h"

namespace ling::test {

// Edit hook: called with each tensor's name, shape and values before writing (may change all three).
using TensorEdit = std::function<void(const std::string&, std::vector<int64_t>&, std::vector<float>&)>;

inline std::string make_tiny_model(const std::string& tag, const std::string& config_json, uint32_t seed = 7,
                                   const TensorEdit& edit = {}, const std::map<std::string, HostTensor>& extra = {}) {
  const std::filesystem::path dir = std::filesystem::temp_directory_path() /
                                    ("ling_engine_test_" + tag + "_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  { std::ofstream(dir / "config.json") << config_json; }
  const ModelConfig cfg = load_config(dir.string());
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::map<std::string, HostTensor> tensors = extra;
  for (const TensorSpec& s : tensor_schema(cfg)) {
    if (!s.required) continue;
    int64_t n = 1;
    for (int64_t d : s.shape) n *= d;
    std::vector<float> v(static_cast<size_t>(n));
    const float in = s.shape.size() == 2 ? float(s.shape[1]) : 1.0f;
    for (float& x : v) {
      const float z = nd(rng);
      switch (s.role) {
        case TensorRole::Norm: x = 1.0f + 0.1f * z; break;
        case TensorRole::RouterBias: x = 0.5f * z; break;
        case TensorRole::Router: x = 0.5f * z / std::sqrt(in); break;
        case TensorRole::Bias: x = 0.1f * z; break;
        default: x = z / std::sqrt(in); break;
      }
    }
    std::vector<int64_t> shape = s.shape;
    if (edit) edit(s.name, shape, v);
    if (shape.empty() && v.empty()) continue;  // the edit dropped it
    tensors[s.name] = HostTensor::from_f32(shape, v.data());
  }
  write_safetensors((dir / "model.safetensors").string(), tensors);
  return dir.string();
}

// An engine on the CPU backend with explicit options (chunk size, absorbed decode).
inline std::unique_ptr<Engine> open_engine(const std::string& dir, const BackendOptions& bo = {}) {
  ModelConfig cfg = load_config(dir);
  Checkpoint ck = Checkpoint::open(dir);
  auto w = std::make_shared<const ModelWeights>(load_weights(cfg, ck));
  return std::make_unique<Engine>(std::move(cfg), std::move(w), make_cpu_backend(bo));
}

// Configs with awkward settings (architecture.md §1, §3).
inline std::string ling2_config() {  // GQA nkv = 1, MoE from layer 0 (fkd 0), YaRN
  return R"({"architectures": ["BailingMoeV2ForCausalLM"], "model_type": "bailing_moe",
    "vocab_size": 97, "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 3,
    "num_attention_heads": 4, "num_key_value_heads": 1, "head_dim": 16, "partial_rotary_factor": 0.5,
    "num_experts": 8, "num_experts_per_tok": 3, "n_group": 4, "topk_group": 2, "moe_intermediate_size": 16,
    "num_shared_experts": 1, "first_k_dense_replace": 0, "routed_scaling_factor": 2.5, "use_qk_norm": true,
    "rope_theta": 10000.0, "rope_scaling": {"rope_type": "yarn", "factor": 4.0, "original_max_position_embeddings": 16},
    "max_position_embeddings": 128, "rms_norm_eps": 1e-6, "tie_word_embeddings": false,
    "eos_token_id": 96, "pad_token_id": 96})";
}
inline std::string ring_linear_config() {  // Lightning + GQA, trailing partial group, fkd 2, qkv bias
  return R"({"architectures": ["BailingMoeLinearV2ForCausalLM"], "model_type": "bailing_moe_linear",
    "vocab_size": 101, "hidden_size": 64, "intermediate_size": 80, "num_hidden_layers": 5,
    "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16, "partial_rotary_factor": 0.5,
    "num_experts": 6, "num_experts_per_tok": 2, "n_group": 3, "topk_group": 2, "moe_intermediate_size": 16,
    "num_shared_experts": 1, "first_k_dense_replace": 2, "routed_scaling_factor": 2.5, "use_qk_norm": true,
    "use_qkv_bias": true, "use_bias": true,
    "layer_group_size": 2, "group_norm_size": 2, "rope_theta": 600000.0, "rope_scaling": null,
    "max_position_embeddings": 128, "rms_norm_eps": 1e-5, "tie_word_embeddings": false,
    "eos_token_id": 100, "pad_token_id": 100})";
}
inline std::string ling25_config() {  // Lightning + MLA, q_lora_rank null, biases, trailing partial group, YaRN with mscale
  return R"({"architectures": ["BailingMoeV2_5ForCausalLM"], "model_type": "bailing_hybrid",
    "vocab_size": 89, "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 5,
    "num_attention_heads": 4, "num_key_value_heads": 4, "head_dim": 16, "partial_rotary_factor": 0.5,
    "num_experts": 8, "num_experts_per_tok": 2, "n_group": 2, "topk_group": 1, "moe_intermediate_size": 16,
    "num_shared_experts": 1, "first_k_dense_replace": 1, "routed_scaling_factor": 2.5, "use_qk_norm": true,
    "use_qkv_bias": true, "use_bias": true, "layer_group_size": 3, "group_norm_size": 4, "q_lora_rank": null, "kv_lora_rank": 24,
    "qk_rope_head_dim": 8, "qk_nope_head_dim": 12, "v_head_dim": 10, "rope_interleave": true,
    "rope_theta": 600000.0,
    "rope_scaling": {"rope_type": "yarn", "factor": 2.0, "original_max_position_embeddings": 32,
                     "mscale": 1.0, "mscale_all_dim": 0.707},
    "max_position_embeddings": 128, "rms_norm_eps": 1e-6, "tie_word_embeddings": false,
    "eos_token_id": 88, "pad_token_id": 88})";
}

}  // namespace ling::test
