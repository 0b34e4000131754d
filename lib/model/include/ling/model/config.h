// ModelConfig: everything ling needs from a Hugging Face config.json, for the three Ling 2.x families and the
// DeepSeek-V3 / Kimi-K2 MLA configs (architecture.md §1). Every field names its HF key and the class default;
// absent keys take the default and are listed in `defaulted_keys` (the loader warns once per key).
// Impossible values are errors naming the file and the key. The per-layer schedule follows the HF rule (§3).
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ling {

enum class Family {
  Ling2,       // BailingMoeV2ForCausalLM, model_type bailing_moe: GQA every layer
  RingLinear,  // BailingMoeLinearV2ForCausalLM, bailing_moe_linear: Lightning + one GQA per group
  Ling25,      // BailingMoeV2_5ForCausalLM, bailing_hybrid: Lightning + one MLA per group
  DeepseekV3,  // DeepseekV3ForCausalLM, deepseek_v3 / kimi_k2: MLA every layer (inspect only)
};
enum class AttnKind { GQA, MLA, Lightning };
enum class FfnKind { Dense, MoE };
// Lightning layer-decay factor f(l) (architecture.md §7.1).
enum class DecayVariant {
  HF,      // 1 - (l-1)/(L-1) + 1e-5   (official HF code; default)
  Engine,  // 1 - l/(L-1) + 1e-5       (vLLM / SGLang)
  MLX,     // 1 - max(0,l-1)/max(1,L-1) + 1e-5
};

const char* family_name(Family f);    // "ling-2.0", "ring-linear", "ling-2.5", "deepseek-v3"
const char* attn_kind_name(AttnKind k);  // "gqa", "mla", "lightning"
const char* ffn_kind_name(FfnKind k);    // "dense", "moe"

// rope_scaling (YaRN) when present (architecture.md §2.8).
struct RopeScaling {
  std::string type;                                  // "yarn" (rope_type or type); others are rejected
  double factor = 1.0;                               // factor
  int64_t original_max_position_embeddings = 4096;   // original_max_position_embeddings
  double beta_fast = 32.0, beta_slow = 1.0;          // beta_fast, beta_slow
  std::optional<double> mscale, mscale_all_dim;      // mscale, mscale_all_dim
  std::optional<double> attention_factor;            // attention_factor
};

struct LayerSpec {
  int index = 0;             // absolute 0-based layer index (MTP layers continue after the main stack)
  AttnKind attn = AttnKind::GQA;
  FfnKind ffn = FfnKind::Dense;
  bool mtp = false;          // a multi-token-prediction layer (excluded from counts and from inference)
};

struct ModelConfig {
  std::string source;        // path of the config.json it came from (for messages)
  std::string name;          // folder name of the model (or the file stem)
  std::string architecture;  // architectures[0]
  std::string model_type;    // model_type
  Family family = Family::Ling25;

  int64_t vocab_size = 157184;            // vocab_size: embedding rows
  int64_t hidden_size = 2048;             // hidden_size: H
  int64_t intermediate_size = 5120;       // intermediate_size: dense FFN width (layers < first_k_dense_replace)
  int64_t num_hidden_layers = 20;         // num_hidden_layers: L, main stack only
  int64_t num_attention_heads = 16;       // num_attention_heads: nh (Lightning and MLA/GQA)
  int64_t num_key_value_heads = 4;        // num_key_value_heads: nkv (GQA only)
  int64_t head_dim = 128;                 // head_dim (or hidden_size / num_attention_heads)
  std::string hidden_act = "silu";        // hidden_act (only silu is supported)
  bool use_qkv_bias = false;              // use_qkv_bias
  bool use_bias = false;                  // use_bias (Lightning dense)
  double rms_norm_eps = 1e-6;             // rms_norm_eps
  bool tie_word_embeddings = false;       // tie_word_embeddings
  int64_t max_position_embeddings = 32768;  // max_position_embeddings
  double rope_theta = 600000.0;           // rope_theta
  std::optional<RopeScaling> rope_scaling;  // rope_scaling (null -> none)
  double partial_rotary_factor = 0.5;     // partial_rotary_factor
  std::vector<int64_t> eos_token_ids{156892};  // eos_token_id (int or list)
  int64_t pad_token_id = 156892;          // pad_token_id

  // MoE (architecture.md §2.4). num_experts == 0 means no MoE (every FFN dense).
  int64_t num_experts = 256;              // num_experts (DeepSeek: n_routed_experts)
  int64_t num_shared_experts = 1;         // num_shared_experts (DeepSeek: n_shared_experts)
  int64_t num_experts_per_tok = 8;        // num_experts_per_tok: k
  int64_t n_group = 8;                    // n_group
  int64_t topk_group = 4;                 // topk_group
  int64_t moe_intermediate_size = 512;    // moe_intermediate_size: I_moe
  int64_t moe_shared_expert_intermediate_size = 0;  // moe_shared_expert_intermediate_size (0 = absent; not read by HF)
  int64_t first_k_dense_replace = 1;      // first_k_dense_replace
  bool moe_router_enable_expert_bias = true;  // moe_router_enable_expert_bias
  double routed_scaling_factor = 1.0;     // routed_scaling_factor (class default 1.0; releases 2.5)
  bool norm_topk_prob = true;             // norm_topk_prob (not read by the HF gate: always renormalises)
  bool use_qk_norm = true;                // use_qk_norm
  int64_t num_nextn_predict_layers = 0;   // num_nextn_predict_layers (MTP)

  // Hybrid schedule and Lightning (architecture.md §2.6, §3).
  int64_t layer_group_size = 5;           // layer_group_size: G (every G-th layer softmax); 0 for Ling 2.0
  int64_t group_norm_size = 4;            // group_norm_size: groups of the Lightning output GroupRMSNorm
  bool linear_silu = false;               // linear_silu (ignored by HF; true is rejected)
  DecayVariant decay = DecayVariant::HF;  // not a config key: --lightning-decay hf|engine|mlx

  // MLA (architecture.md §2.7). q_lora_rank 0 = null (q_proj).
  int64_t kv_lora_rank = 512;             // kv_lora_rank: r_kv
  int64_t q_lora_rank = 0;                // q_lora_rank: r_q (null -> 0)
  int64_t qk_rope_head_dim = 64;          // qk_rope_head_dim: d_rope
  int64_t qk_nope_head_dim = 128;         // qk_nope_head_dim: d_nope
  int64_t v_head_dim = 128;               // v_head_dim: d_v
  bool rope_interleave = true;            // rope_interleave

  std::vector<LayerSpec> layers;          // main stack then MTP layers
  std::vector<std::string> defaulted_keys;  // keys absent from config.json that took the class default

  // Derived sizes.
  int64_t rope_dim() const;               // head_dim * partial_rotary_factor (rotary dims per head)
  int64_t qk_head_dim() const { return qk_nope_head_dim + qk_rope_head_dim; }
  int64_t shared_expert_width() const { return moe_intermediate_size * num_shared_experts; }
  int64_t num_main_layers() const { return num_hidden_layers; }
  bool has_mla() const;
  bool has_lightning() const;
};

// Load and validate config.json (a path to the file or to its folder). Throws ling::Error on bad input.
ModelConfig load_config(const std::string& path);
// Parse from text; `source` is used in messages.
ModelConfig parse_config(const std::string& json_text, const std::string& source);
// The HF layer-type rule (§3): softmax iff (i+1) % G == 0 or i >= (L/G)*G.
bool is_softmax_layer(int64_t layer, int64_t num_layers, int64_t group_size);
// Lightning slopes (ALiBi rule, §2.6 step 5) and decay factor f(l) (§7.1).
std::vector<double> lightning_slopes(int64_t num_heads);
double lightning_decay_factor(DecayVariant v, int64_t layer, int64_t num_layers);
DecayVariant parse_decay_variant(const std::string& name);  // hf|engine|mlx

}  // namespace ling
