// ModelConfig from config.json (architecture.md §1, §3). Each family reads its own keys; an absent key takes
// the config-class default, is listed in defaulted_keys and warned about once. Impossible values are errors
// naming the file and the key. The layer table follows the HF rule, including the trailing partial group;
// MTP layers (num_nextn_predict_layers) follow the main stack and are MLA (Ling 2.5) or the family's softmax
// kind otherwise.
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ling/core/error.h"
#include "ling/core/log.h"
#include "ling/model/config.h"

namespace ling {

namespace fs = std::filesystem;
using json = nlohmann::json;

const char* family_name(Family f) {
  switch (f) {
    case Family::Ling2: return "ling-2.0";
    case Family::RingLinear: return "ring-linear";
    case Family::Ling25: return "ling-2.5";
    case Family::DeepseekV3: return "deepseek-v3";
  }
  return "?";
}
const char* attn_kind_name(AttnKind k) {
  return k == AttnKind::GQA ? "gqa" : k == AttnKind::MLA ? "mla" : "lightning";
}
const char* ffn_kind_name(FfnKind k) { return k == FfnKind::Dense ? "dense" : "moe"; }

namespace {

// Reads typed keys with defaults, recording which ones were absent.
class KeyReader {
 public:
  KeyReader(const json& j, ModelConfig& c) : j_(j), c_(c) {}

  bool has(const char* key) const { return j_.contains(key) && !j_[key].is_null(); }

  int64_t integer(const char* key, int64_t def) {
    if (!j_.contains(key)) return defaulted(key, def);
    const json& v = j_[key];
    if (v.is_number_integer() || v.is_number_unsigned()) return v.get<int64_t>();
    if (v.is_number_float() && std::floor(v.get<double>()) == v.get<double>()) return int64_t(v.get<double>());
    LING_THROW(c_.source, ": key '", key, "' must be an integer, got ", v.dump());
  }
  // An integer that may be null (returned as 0).
  int64_t integer_or_null(const char* key, int64_t def) {
    if (j_.contains(key) && j_[key].is_null()) return 0;
    return integer(key, def);
  }
  double number(const char* key, double def) {
    if (!j_.contains(key)) return defaulted(key, def);
    const json& v = j_[key];
    if (!v.is_number()) LING_THROW(c_.source, ": key '", key, "' must be a number, got ", v.dump());
    return v.get<double>();
  }
  bool boolean(const char* key, bool def) {
    if (!j_.contains(key)) return defaulted(key, def);
    const json& v = j_[key];
    if (!v.is_boolean()) LING_THROW(c_.source, ": key '", key, "' must be true or false, got ", v.dump());
    return v.get<bool>();
  }
  std::string string(const char* key, const std::string& def) {
    if (!j_.contains(key)) return defaulted(key, def);
    const json& v = j_[key];
    if (!v.is_string()) LING_THROW(c_.source, ": key '", key, "' must be a string, got ", v.dump());
    return v.get<std::string>();
  }

 private:
  template <typename T>
  T defaulted(const char* key, T def) {
    c_.defaulted_keys.push_back(key);
    std::ostringstream os;
    os << def;
    log_warn(c_.source, ": key '", key, "' absent, using the default ", os.str());
    return def;
  }
  const json& j_;
  ModelConfig& c_;
};

Family detect_family(const json& j, const std::string& source, std::string* model_type, std::string* arch) {
  *model_type = j.contains("model_type") && j["model_type"].is_string() ? j["model_type"].get<std::string>() : "";
  *arch = "";
  if (j.contains("architectures") && j["architectures"].is_array() && !j["architectures"].empty() &&
      j["architectures"][0].is_string())
    *arch = j["architectures"][0].get<std::string>();
  if (*model_type == "bailing_moe" || *arch == "BailingMoeV2ForCausalLM") return Family::Ling2;
  if (*model_type == "bailing_moe_linear" || *arch == "BailingMoeLinearV2ForCausalLM") return Family::RingLinear;
  if (*model_type == "bailing_hybrid" || *arch == "BailingMoeV2_5ForCausalLM") return Family::Ling25;
  if (*model_type == "deepseek_v3" || *model_type == "kimi_k2" || *arch == "DeepseekV3ForCausalLM")
    return Family::DeepseekV3;
  LING_THROW(source, ": unsupported model_type '", *model_type, "' (architectures[0] '", *arch,
             "'); expected bailing_moe, bailing_moe_linear, bailing_hybrid, deepseek_v3 or kimi_k2");
}

void parse_rope_scaling(const json& j, ModelConfig& c) {
  if (!j.contains("rope_scaling") || j["rope_scaling"].is_null()) return;
  const json& r = j["rope_scaling"];
  if (!r.is_object()) LING_THROW(c.source, ": key 'rope_scaling' must be null or an object");
  RopeScaling s;
  s.type = r.contains("rope_type") ? r["rope_type"].get<std::string>()
                                    : r.contains("type") ? r["type"].get<std::string>() : "";
  if (s.type == "default") return;  // transformers 5 fills rope_scaling with the default rope: no scaling
  if (s.type != "yarn") LING_THROW(c.source, ": rope_scaling type '", s.type, "' is not supported (only yarn)");
  auto num = [&](const char* k) -> std::optional<double> {
    if (!r.contains(k) || r[k].is_null()) return std::nullopt;
    if (!r[k].is_number()) LING_THROW(c.source, ": rope_scaling.", k, " must be a number");
    return r[k].get<double>();
  };
  if (auto f = num("factor")) s.factor = *f; else LING_THROW(c.source, ": rope_scaling (yarn) needs 'factor'");
  if (auto o = num("original_max_position_embeddings")) s.original_max_position_embeddings = int64_t(*o);
  if (auto b = num("beta_fast")) s.beta_fast = *b;
  if (auto b = num("beta_slow")) s.beta_slow = *b;
  s.mscale = num("mscale");
  s.mscale_all_dim = num("mscale_all_dim");
  s.attention_factor = num("attention_factor");
  if (s.factor <= 0) LING_THROW(c.source, ": rope_scaling.factor must be positive");
  c.rope_scaling = s;
}

void check(bool ok, const ModelConfig& c, const char* key, const std::string& what) {
  if (!ok) LING_THROW(c.source, ": key '", key, "': ", what);
}

void validate(ModelConfig& c) {
  check(c.vocab_size > 0, c, "vocab_size", "must be positive");
  check(c.hidden_size > 0, c, "hidden_size", "must be positive");
  check(c.num_hidden_layers > 0, c, "num_hidden_layers", "must be positive");
  check(c.num_attention_heads > 0, c, "num_attention_heads", "must be positive");
  check(c.head_dim > 0, c, "head_dim", "must be positive");
  check(c.rms_norm_eps > 0, c, "rms_norm_eps", "must be positive");
  check(c.hidden_act == "silu", c, "hidden_act", "only silu is supported, got '" + c.hidden_act + "'");
  check(!c.linear_silu, c, "linear_silu", "true is not supported (the reference code ignores it; releases use false)");
  check(c.max_position_embeddings > 0, c, "max_position_embeddings", "must be positive");
  check(c.intermediate_size > 0 || c.first_k_dense_replace == 0, c, "intermediate_size", "must be positive");
  check(c.first_k_dense_replace >= 0, c, "first_k_dense_replace", "must be non-negative");
  check(c.num_nextn_predict_layers >= 0, c, "num_nextn_predict_layers", "must be non-negative");
  bool uses_gqa = c.family == Family::Ling2 || c.family == Family::RingLinear;
  if (uses_gqa) {
    check(c.num_key_value_heads > 0, c, "num_key_value_heads", "must be positive");
    check(c.num_attention_heads % c.num_key_value_heads == 0, c, "num_key_value_heads",
          cat(c.num_key_value_heads, " does not divide num_attention_heads ", c.num_attention_heads));
  }
  if (c.family != Family::DeepseekV3) {
    double rd = double(c.head_dim) * c.partial_rotary_factor;
    check(c.partial_rotary_factor > 0 && c.partial_rotary_factor <= 1, c, "partial_rotary_factor", "must be in (0, 1]");
    check(rd == std::floor(rd) && int64_t(rd) % 2 == 0, c, "partial_rotary_factor",
          cat("head_dim ", c.head_dim, " x ", c.partial_rotary_factor, " must give an even number of rotary dims"));
  }
  if (c.num_experts > 0) {
    check(c.num_experts_per_tok > 0, c, "num_experts_per_tok", "must be positive");
    check(c.num_experts_per_tok <= c.num_experts, c, "num_experts_per_tok",
          cat(c.num_experts_per_tok, " experts per token exceed num_experts ", c.num_experts));
    check(c.n_group > 0, c, "n_group", "must be positive");
    check(c.num_experts % c.n_group == 0, c, "n_group", cat(c.n_group, " does not divide num_experts ", c.num_experts));
    check(c.topk_group > 0 && c.topk_group <= c.n_group, c, "topk_group", cat("must be in 1..n_group (", c.n_group, ")"));
    check(c.num_experts_per_tok <= c.topk_group * (c.num_experts / c.n_group), c, "num_experts_per_tok",
          "exceeds the experts of the topk_group selected groups");
    check(c.moe_intermediate_size > 0, c, "moe_intermediate_size", "must be positive");
    check(c.num_shared_experts >= 0, c, "num_shared_experts", "must be non-negative");
    if (c.moe_shared_expert_intermediate_size > 0 && c.moe_shared_expert_intermediate_size != c.shared_expert_width())
      log_warn(c.source, ": moe_shared_expert_intermediate_size ", c.moe_shared_expert_intermediate_size,
               " differs from moe_intermediate_size x num_shared_experts = ", c.shared_expert_width(),
               "; the reference code uses the latter");
  }
  if (c.family == Family::RingLinear || c.family == Family::Ling25) {
    check(c.layer_group_size > 0, c, "layer_group_size", "must be positive");
    check(c.group_norm_size > 0, c, "group_norm_size", "must be positive");
    check((c.num_attention_heads * c.head_dim) % c.group_norm_size == 0, c, "group_norm_size",
          cat(c.group_norm_size, " does not divide num_attention_heads x head_dim = ", c.num_attention_heads * c.head_dim));
  }
  if (c.family == Family::Ling25 || c.family == Family::DeepseekV3) {
    check(c.kv_lora_rank > 0, c, "kv_lora_rank", "must be positive");
    check(c.q_lora_rank >= 0, c, "q_lora_rank", "must be null or positive");
    check(c.qk_rope_head_dim > 0 && c.qk_rope_head_dim % 2 == 0, c, "qk_rope_head_dim", "must be positive and even");
    check(c.qk_nope_head_dim > 0, c, "qk_nope_head_dim", "must be positive");
    check(c.v_head_dim > 0, c, "v_head_dim", "must be positive");
    if (c.family == Family::Ling25) {
      check(c.rope_interleave, c, "rope_interleave", "false is not supported (the reference code raises on it)");
      check(c.rope_dim() == c.qk_rope_head_dim, c, "qk_rope_head_dim",
            cat(c.qk_rope_head_dim, " must equal head_dim x partial_rotary_factor = ", c.rope_dim(),
                " (the MLA rotary embedding uses the model-level rope dims)"));
    }
  }
}

void build_layers(ModelConfig& c) {
  c.layers.clear();
  const int64_t L = c.num_hidden_layers;
  auto ffn_of = [&](int64_t i) {
    return (c.num_experts > 0 && i >= c.first_k_dense_replace) ? FfnKind::MoE : FfnKind::Dense;
  };
  for (int64_t i = 0; i < L; ++i) {
    LayerSpec s;
    s.index = int(i);
    s.ffn = ffn_of(i);
    switch (c.family) {
      case Family::Ling2: s.attn = AttnKind::GQA; break;
      case Family::DeepseekV3: s.attn = AttnKind::MLA; break;
      case Family::RingLinear:
        s.attn = is_softmax_layer(i, L, c.layer_group_size) ? AttnKind::GQA : AttnKind::Lightning;
        break;
      case Family::Ling25:
        s.attn = is_softmax_layer(i, L, c.layer_group_size) ? AttnKind::MLA : AttnKind::Lightning;
        break;
    }
    c.layers.push_back(s);
  }
  for (int64_t m = 0; m < c.num_nextn_predict_layers; ++m) {
    LayerSpec s;
    s.index = int(L + m);
    s.mtp = true;
    s.ffn = c.num_experts > 0 ? FfnKind::MoE : FfnKind::Dense;
    s.attn = (c.family == Family::Ling2 || c.family == Family::RingLinear) ? AttnKind::GQA : AttnKind::MLA;
    c.layers.push_back(s);
  }
}

}  // namespace

int64_t ModelConfig::rope_dim() const {
  return int64_t(std::llround(double(head_dim) * partial_rotary_factor));
}
bool ModelConfig::has_mla() const {
  for (const auto& l : layers) if (!l.mtp && l.attn == AttnKind::MLA) return true;
  return false;
}
bool ModelConfig::has_lightning() const {
  for (const auto& l : layers) if (!l.mtp && l.attn == AttnKind::Lightning) return true;
  return false;
}

bool is_softmax_layer(int64_t layer, int64_t num_layers, int64_t group_size) {
  if (group_size <= 0) return true;
  return (layer + 1) % group_size == 0 || layer >= (num_layers / group_size) * group_size;
}

std::vector<double> lightning_slopes(int64_t num_heads) {
  // ALiBi rule: for a power of two n, start = 2^(-2^(-(log2 n - 3))), slope_h = start^(h+1); otherwise
  // slopes(p) for the largest power of two p < n, then every other slope of slopes(2p) for the rest.
  auto pow2 = [](int64_t n) {
    std::vector<double> s(static_cast<size_t>(n));
    const double start = std::pow(2.0, -std::pow(2.0, -(std::log2(double(n)) - 3.0)));
    for (int64_t h = 0; h < n; ++h) s[size_t(h)] = std::pow(start, double(h + 1));
    return s;
  };
  LING_CHECK(num_heads > 0, "lightning_slopes: head count must be positive");
  const double l2 = std::log2(double(num_heads));
  if (l2 == std::floor(l2)) return pow2(num_heads);
  const int64_t p = int64_t(1) << int64_t(std::floor(l2));
  std::vector<double> out = pow2(p);
  std::vector<double> extra = pow2(2 * p);
  for (size_t i = 0; i < extra.size() && int64_t(out.size()) < num_heads; i += 2) out.push_back(extra[i]);
  return out;
}

double lightning_decay_factor(DecayVariant v, int64_t layer, int64_t num_layers) {
  const double l = double(layer), L = double(num_layers);
  switch (v) {
    case DecayVariant::HF: return 1.0 - (l - 1.0) / (L - 1.0) + 1e-5;
    case DecayVariant::Engine: return 1.0 - l / (L - 1.0) + 1e-5;
    case DecayVariant::MLX: return 1.0 - std::max(0.0, l - 1.0) / std::max(1.0, L - 1.0) + 1e-5;
  }
  return 1.0;
}

DecayVariant parse_decay_variant(const std::string& name) {
  if (name == "hf") return DecayVariant::HF;
  if (name == "engine") return DecayVariant::Engine;
  if (name == "mlx") return DecayVariant::MLX;
  LING_THROW("unknown Lightning decay variant '", name, "' (expected hf, engine or mlx)");
}

ModelConfig parse_config(const std::string& json_text, const std::string& source) {
  ModelConfig c;
  c.source = source;
  json j;
  try {
    j = json::parse(json_text);
  } catch (const json::parse_error& e) {
    LING_THROW(source, ": invalid JSON at byte ", e.byte, " (", e.what(), ")");
  }
  if (!j.is_object()) LING_THROW(source, ": not a JSON object");
  c.family = detect_family(j, source, &c.model_type, &c.architecture);
  if (c.architecture.empty()) {
    static const char* archs[] = {"BailingMoeV2ForCausalLM", "BailingMoeLinearV2ForCausalLM",
                                  "BailingMoeV2_5ForCausalLM", "DeepseekV3ForCausalLM"};
    c.architecture = archs[int(c.family)];
  }
  KeyReader r(j, c);
  const bool ds = c.family == Family::DeepseekV3;
  c.vocab_size = r.integer("vocab_size", 157184);
  c.hidden_size = r.integer("hidden_size", 2048);
  c.intermediate_size = r.integer("intermediate_size", 5120);
  c.num_hidden_layers = r.integer("num_hidden_layers", 20);
  c.num_attention_heads = r.integer("num_attention_heads", 16);
  c.num_key_value_heads = r.integer("num_key_value_heads", ds ? c.num_attention_heads : 4);
  if (r.has("head_dim")) {
    c.head_dim = r.integer("head_dim", 128);
  } else if (!ds) {
    c.head_dim = c.num_attention_heads > 0 ? c.hidden_size / c.num_attention_heads : 0;
    c.defaulted_keys.push_back("head_dim");
  }
  c.hidden_act = r.string("hidden_act", "silu");
  c.rms_norm_eps = r.number("rms_norm_eps", 1e-6);
  c.tie_word_embeddings = r.boolean("tie_word_embeddings", false);
  c.max_position_embeddings = r.integer("max_position_embeddings", ds ? 163840 : 32768);
  c.rope_theta = r.number("rope_theta", ds ? 10000.0 : 600000.0);
  parse_rope_scaling(j, c);
  if (j.contains("eos_token_id") && j["eos_token_id"].is_array()) {
    c.eos_token_ids.clear();
    for (const auto& v : j["eos_token_id"]) {
      if (!v.is_number_integer()) LING_THROW(source, ": key 'eos_token_id' must hold integers");
      c.eos_token_ids.push_back(v.get<int64_t>());
    }
  } else if (j.contains("eos_token_id") && j["eos_token_id"].is_null()) {
    c.eos_token_ids.clear();
  } else {
    c.eos_token_ids = {r.integer("eos_token_id", 156892)};
  }
  if (ds && !j.contains("pad_token_id")) c.pad_token_id = -1;  // DeepSeek configs carry no pad id
  else c.pad_token_id = (j.contains("pad_token_id") && j["pad_token_id"].is_null()) ? -1 : r.integer("pad_token_id", 156892);

  if (ds) {
    c.num_experts = r.integer_or_null("n_routed_experts", 256);
    c.num_shared_experts = r.integer_or_null("n_shared_experts", 1);
    c.moe_router_enable_expert_bias = true;
    c.use_qk_norm = false;
    c.partial_rotary_factor = 1.0;
  } else {
    c.num_experts = r.integer_or_null("num_experts", 256);
    c.num_shared_experts = r.integer_or_null("num_shared_experts", 1);
    c.moe_router_enable_expert_bias = r.boolean("moe_router_enable_expert_bias", true);
    c.use_qk_norm = r.boolean("use_qk_norm", true);
    c.partial_rotary_factor = r.number("partial_rotary_factor", 0.5);
    c.use_qkv_bias = r.boolean("use_qkv_bias", false);
    c.use_bias = r.boolean("use_bias", false);
  }
  c.num_experts_per_tok = r.integer_or_null("num_experts_per_tok", 8);
  c.n_group = r.integer_or_null("n_group", 8);
  c.topk_group = r.integer_or_null("topk_group", 4);
  c.moe_intermediate_size = r.integer_or_null("moe_intermediate_size", 512);
  if (r.has("moe_shared_expert_intermediate_size"))
    c.moe_shared_expert_intermediate_size = r.integer("moe_shared_expert_intermediate_size", 0);
  c.first_k_dense_replace = r.integer("first_k_dense_replace", ds ? 3 : 1);
  c.routed_scaling_factor = r.number("routed_scaling_factor", 1.0);
  if (j.contains("norm_topk_prob") && j["norm_topk_prob"].is_boolean()) c.norm_topk_prob = j["norm_topk_prob"].get<bool>();
  c.num_nextn_predict_layers = r.integer("num_nextn_predict_layers", 0);

  c.layer_group_size = 0;
  if (c.family == Family::RingLinear || c.family == Family::Ling25) {
    c.layer_group_size = r.integer("layer_group_size", 5);
    c.group_norm_size = r.integer("group_norm_size", 4);
    c.linear_silu = r.boolean("linear_silu", false);
  }
  if (c.family == Family::Ling25 || ds) {
    c.kv_lora_rank = r.integer("kv_lora_rank", 512);
    c.q_lora_rank = r.integer_or_null("q_lora_rank", 0);
    c.qk_rope_head_dim = r.integer("qk_rope_head_dim", 64);
    if (ds) c.head_dim = c.qk_rope_head_dim;  // DeepSeek has no head_dim: the rotary basis is the rope dims
    c.qk_nope_head_dim = r.integer("qk_nope_head_dim", 128);
    c.v_head_dim = r.integer("v_head_dim", 128);
    if (!ds) c.rope_interleave = r.boolean("rope_interleave", true);
  }
  if (c.num_experts == 0) c.first_k_dense_replace = c.num_hidden_layers;
  validate(c);
  build_layers(c);
  return c;
}

ModelConfig load_config(const std::string& path) {
  fs::path p(path);
  std::error_code ec;
  if (fs::is_directory(p, ec)) p /= "config.json";
  if (!fs::exists(p, ec)) LING_THROW(p.string(), ": no such file (expected a model folder or its config.json)");
  std::ifstream in(p);
  if (!in) LING_THROW(p.string(), ": cannot open");
  std::stringstream ss;
  ss << in.rdbuf();
  ModelConfig c = parse_config(ss.str(), p.string());
  std::string stem = p.parent_path().filename().string();
  c.name = stem.empty() || stem == "." ? p.stem().string() : stem;
  return c;
}

}  // namespace ling
