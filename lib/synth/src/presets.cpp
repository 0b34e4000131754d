// config.json for `ling synth`: a family template with every key of the published configs (architecture.md
// §1; key sets of Ling-mini-2.0, Ring-mini-linear-2.0 and Ling-2.5-1T), then a preset's dimensions (tiny: the
// golden fixtures' dims; small: a CPU-benchmark size) or a user config.json, then --layers/--experts/--vocab.
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "ling/core/error.h"
#include "ling/core/log.h"
#include "ling/synth/synth.h"

namespace ling::synth {
namespace {

using json = nlohmann::json;

// Keys common to the three families (values are the published ones; the preset overwrites the dimensions).
const char* const kCommon = R"({
  "attention_dropout": 0.0, "embedding_dropout": 0.0, "output_dropout": 0.0, "eos_token_id": 156892,
  "pad_token_id": 156892, "first_k_dense_replace": 1, "head_dim": 128, "hidden_act": "silu", "hidden_size": 2048,
  "initializer_range": 0.02, "intermediate_size": 5120, "max_position_embeddings": 32768,
  "moe_intermediate_size": 512, "moe_router_enable_expert_bias": true, "moe_shared_expert_intermediate_size": 512,
  "n_group": 8, "norm_topk_prob": true, "num_attention_heads": 16, "num_experts": 256, "num_experts_per_tok": 8,
  "num_hidden_layers": 20, "num_key_value_heads": 4, "num_nextn_predict_layers": 0, "num_shared_experts": 1,
  "partial_rotary_factor": 0.5, "rms_norm_eps": 1e-06, "rope_scaling": null, "rope_theta": 600000.0,
  "routed_scaling_factor": 2.5, "router_dtype": "fp32", "score_function": "sigmoid", "tie_word_embeddings": false,
  "topk_group": 4, "torch_dtype": "bfloat16", "use_bias": false, "use_cache": true, "use_qk_norm": true,
  "use_qkv_bias": false, "use_rmsnorm": true, "vocab_size": 157184
})";

json family_template(const std::string& family) {
  json j = json::parse(kCommon);
  if (family == "ling-2.0") {
    j["architectures"] = {"BailingMoeV2ForCausalLM"};
    j["model_type"] = "bailing_moe";
    j["auto_map"] = {{"AutoConfig", "configuration_bailing_moe_v2.BailingMoeV2Config"},
                     {"AutoModel", "modeling_bailing_moe_v2.BailingMoeV2Model"},
                     {"AutoModelForCausalLM", "modeling_bailing_moe_v2.BailingMoeV2ForCausalLM"}};
  } else if (family == "ring-linear") {
    j["architectures"] = {"BailingMoeLinearV2ForCausalLM"};
    j["model_type"] = "bailing_moe_linear";
    j["auto_map"] = {{"AutoConfig", "configuration_bailing_moe_linear_v2.BailingMoeLinearV2Config"},
                     {"AutoModel", "modeling_bailing_moe_linear_v2.BailingMoeLinearV2Model"},
                     {"AutoModelForCausalLM", "modeling_bailing_moe_linear_v2.BailingMoeLinearV2ForCausalLM"}};
    j["group_norm_size"] = 4;
    j["layer_group_size"] = 5;
    j["linear_silu"] = false;
    j["max_position_embeddings"] = 131072;
    j["rope_theta"] = 1000000.0;
  } else if (family == "ling-2.5") {
    j["architectures"] = {"BailingMoeV2_5ForCausalLM"};
    j["model_type"] = "bailing_hybrid";
    j["auto_map"] = {{"AutoConfig", "configuration_bailing_moe_v2_5.BailingMoeV2_5Config"},
                     {"AutoModel", "modeling_bailing_moe_v2_5.BailingMoeV2_5Model"},
                     {"AutoModelForCausalLM", "modeling_bailing_moe_v2_5.BailingMoeV2_5ForCausalLM"}};
    j["group_norm_size"] = 4;
    j["layer_group_size"] = 8;
    j["linear_silu"] = false;
    j["kv_lora_rank"] = 512;
    j["q_lora_rank"] = 1536;
    j["qk_nope_head_dim"] = 128;
    j["qk_rope_head_dim"] = 64;
    j["v_head_dim"] = 128;
    j["rope_interleave"] = true;
    j["scoring_func"] = "sigmoid";
    j["seq_aux"] = true;
    j["topk_method"] = "noaux_tc";
    j["max_position_embeddings"] = 262144;
  } else {
    LING_THROW("synth: unknown family '", family, "' (expected ling-2.0, ring-linear or ling-2.5)");
  }
  return j;
}

std::string family_of(const json& cfg, const std::string& source) {
  std::string arch;
  if (cfg.contains("architectures") && cfg["architectures"].is_array() && !cfg["architectures"].empty() &&
      cfg["architectures"][0].is_string())
    arch = cfg["architectures"][0].get<std::string>();
  if (arch == "BailingMoeV2ForCausalLM") return "ling-2.0";
  if (arch == "BailingMoeLinearV2ForCausalLM") return "ring-linear";
  if (arch == "BailingMoeV2_5ForCausalLM") return "ling-2.5";
  LING_THROW(source, ": architectures[0] '", arch, "' is not a Ling 2.x family ling synth can build");
}

// Dimensions of the presets. tiny = the golden fixtures (fixtures/ling20-tiny, ling25-tiny).
void apply_preset(json& j, const std::string& family, const std::string& preset) {
  if (preset == "tiny") {
    json p = {{"vocab_size", 1024}, {"hidden_size", 256}, {"intermediate_size", 512}, {"num_hidden_layers", 8},
              {"num_attention_heads", 4}, {"num_key_value_heads", 2}, {"head_dim", 64},
              {"moe_intermediate_size", 64}, {"moe_shared_expert_intermediate_size", 64}, {"num_experts", 16},
              {"num_experts_per_tok", 4}, {"n_group", 4}, {"topk_group", 2}, {"eos_token_id", 1023},
              {"pad_token_id", 1023}, {"max_position_embeddings", 4096}, {"rope_theta", 600000.0},
              {"first_k_dense_replace", 1}, {"torch_dtype", "float32"}};
    j.update(p);
    if (family == "ling-2.0") j["num_hidden_layers"] = 4;
    if (family != "ling-2.0") j.update(json{{"layer_group_size", 4}, {"group_norm_size", 2}});
    if (family == "ling-2.5")
      j.update(json{{"q_lora_rank", 96}, {"kv_lora_rank", 64}, {"qk_nope_head_dim", 32}, {"qk_rope_head_dim", 32},
                    {"v_head_dim", 32}});
  } else if (preset == "small") {
    json p = {{"vocab_size", 8192}, {"hidden_size", 1024}, {"intermediate_size", 2816}, {"num_hidden_layers", 8},
              {"num_attention_heads", 16}, {"num_key_value_heads", 4}, {"head_dim", 64},
              {"moe_intermediate_size", 256}, {"moe_shared_expert_intermediate_size", 256}, {"num_experts", 32},
              {"num_experts_per_tok", 4}, {"n_group", 4}, {"topk_group", 2}, {"eos_token_id", 8191},
              {"pad_token_id", 8191}, {"max_position_embeddings", 32768}, {"first_k_dense_replace", 1},
              {"torch_dtype", "bfloat16"}};
    j.update(p);
    if (family != "ling-2.0") j.update(json{{"layer_group_size", 4}, {"group_norm_size", 4}});
    if (family == "ling-2.5")
      j.update(json{{"q_lora_rank", 384}, {"kv_lora_rank", 256}, {"qk_nope_head_dim", 64}, {"qk_rope_head_dim", 32},
                    {"v_head_dim", 64}, {"num_key_value_heads", 16}});
  } else {
    LING_THROW("synth: unknown preset '", preset, "' (expected tiny, small or a config.json path)");
  }
}

int64_t get_int(const json& j, const char* key, int64_t def) {
  return j.contains(key) && j[key].is_number_integer() ? j[key].get<int64_t>() : def;
}

}  // namespace

std::string make_config_json(const SynthOptions& o) {
  json j;
  std::string family = o.family;
  if (o.preset == "tiny" || o.preset == "small") {
    LING_CHECK(!family.empty(), "synth: --family is required with --preset ", o.preset);
    j = family_template(family);
    apply_preset(j, family, o.preset);
  } else {
    std::ifstream f(o.preset);
    LING_CHECK(f.good(), o.preset, ": cannot open config (expected tiny, small or a config.json path)");
    try {
      j = json::parse(f);
    } catch (const json::exception& e) {
      LING_THROW(o.preset, ": not valid JSON: ", e.what());
    }
    LING_CHECK(j.is_object(), o.preset, ": top level is not a JSON object");
    std::string fam = family_of(j, o.preset);
    LING_CHECK(family.empty() || family == fam, o.preset, ": is a ", fam, " config, not ", family);
    family = fam;
  }
  if (o.layers > 0) {
    j["num_hidden_layers"] = o.layers;
    if (get_int(j, "first_k_dense_replace", 1) > o.layers) j["first_k_dense_replace"] = o.layers;
  }
  if (o.experts > 0) {
    j["num_experts"] = o.experts;
    if (get_int(j, "num_experts_per_tok", 8) > o.experts) j["num_experts_per_tok"] = o.experts;
    int64_t groups = get_int(j, "n_group", 8);
    if (groups > 1 && (o.experts % groups != 0 || o.experts / groups < 2)) {
      log_warn("synth: ", o.experts, " experts do not split into n_group ", groups, " groups; using n_group 1");
      j["n_group"] = 1;
      j["topk_group"] = 1;
    }
  }
  if (o.vocab > 0) {
    j["vocab_size"] = o.vocab;
    if (get_int(j, "eos_token_id", 0) >= o.vocab) j["eos_token_id"] = o.vocab - 1;
    if (get_int(j, "pad_token_id", 0) >= o.vocab) j["pad_token_id"] = o.vocab - 1;
  }
  if (!o.dtype.empty()) {
    LING_CHECK(o.dtype == "f32" || o.dtype == "bf16", "synth: --dtype '", o.dtype, "' (expected f32 or bf16)");
    j["torch_dtype"] = o.dtype == "f32" ? "float32" : "bfloat16";
  } else if (j.value("torch_dtype", json()) != "float32") {
    j["torch_dtype"] = "bfloat16";
  }
  return j.dump(2) + "\n";
}

uint64_t parse_size(const std::string& text, const std::string& what) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::logic_error&) {
    LING_THROW(what, ": '", text, "' is not a size (e.g. 500M, 2G)");
  }
  std::string unit = text.substr(used);
  if (!unit.empty() && (unit.back() == 'B' || unit.back() == 'b')) unit.pop_back();
  double mul = 1;
  if (unit == "K" || unit == "k") mul = 1024.0;
  else if (unit == "M" || unit == "m") mul = 1024.0 * 1024;
  else if (unit == "G" || unit == "g") mul = 1024.0 * 1024 * 1024;
  else if (unit == "T" || unit == "t") mul = 1024.0 * 1024 * 1024 * 1024;
  else LING_CHECK(unit.empty(), what, ": '", text, "' has an unknown unit (use K, M, G or T)");
  LING_CHECK(v > 0, what, ": '", text, "' must be positive");
  return static_cast<uint64_t>(v * mul);
}

}  // namespace ling::synth
