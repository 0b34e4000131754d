// Tensor schema (architecture.md §4): the official Hugging Face names and [out, in] shapes of every tensor a
// checkpoint of the given config holds, layer by layer. DeepSeek-V3 / Kimi-K2 configs use their own names
// (model.embed_tokens, self_attn.*, o_proj, e_score_correction_bias) so inspect can check them as well.
#include "ling/model/schema.h"

namespace ling {

namespace {

struct Builder {
  const ModelConfig& c;
  std::vector<TensorSpec>& out;
  void add(std::string name, std::vector<int64_t> shape, TensorRole role, int layer) {
    out.push_back(TensorSpec{std::move(name), std::move(shape), role, layer, true});
  }
};

void attention_ling(Builder& b, const std::string& p, const LayerSpec& l) {
  const ModelConfig& c = b.c;
  const int64_t H = c.hidden_size, nh = c.num_attention_heads, hd = c.head_dim;
  const int li = l.index;
  if (l.attn == AttnKind::GQA || l.attn == AttnKind::Lightning) {
    const int64_t nkv = l.attn == AttnKind::GQA ? c.num_key_value_heads : nh;
    const int64_t rows = (nh + 2 * nkv) * hd;
    b.add(p + "query_key_value.weight", {rows, H}, TensorRole::Linear, li);
    if (c.use_qkv_bias) b.add(p + "query_key_value.bias", {rows}, TensorRole::Bias, li);
    if (c.use_qk_norm) {
      b.add(p + "query_layernorm.weight", {hd}, TensorRole::Norm, li);
      b.add(p + "key_layernorm.weight", {hd}, TensorRole::Norm, li);
    }
    if (l.attn == AttnKind::Lightning) {
      b.add(p + "g_proj.weight", {nh * hd, H}, TensorRole::Linear, li);
      b.add(p + "g_norm.weight", {nh * hd}, TensorRole::Norm, li);
    }
    b.add(p + "dense.weight", {H, nh * hd}, TensorRole::Linear, li);
    const bool dense_bias = l.attn == AttnKind::Lightning ? c.use_bias : c.use_qkv_bias;
    if (dense_bias) b.add(p + "dense.bias", {H}, TensorRole::Bias, li);
    return;
  }
  // MLA (§2.7); biases on q_a_proj (or q_proj), kv_a_proj_with_mqa and dense iff use_qkv_bias.
  const int64_t dqk = c.qk_head_dim(), rkv = c.kv_lora_rank, rope = c.qk_rope_head_dim;
  if (c.q_lora_rank > 0) {
    b.add(p + "q_a_proj.weight", {c.q_lora_rank, H}, TensorRole::Linear, li);
    if (c.use_qkv_bias) b.add(p + "q_a_proj.bias", {c.q_lora_rank}, TensorRole::Bias, li);
    b.add(p + "q_a_layernorm.weight", {c.q_lora_rank}, TensorRole::Norm, li);
    b.add(p + "q_b_proj.weight", {nh * dqk, c.q_lora_rank}, TensorRole::Linear, li);
  } else {
    b.add(p + "q_proj.weight", {nh * dqk, H}, TensorRole::Linear, li);
    if (c.use_qkv_bias) b.add(p + "q_proj.bias", {nh * dqk}, TensorRole::Bias, li);
  }
  b.add(p + "kv_a_proj_with_mqa.weight", {rkv + rope, H}, TensorRole::Linear, li);
  if (c.use_qkv_bias) b.add(p + "kv_a_proj_with_mqa.bias", {rkv + rope}, TensorRole::Bias, li);
  b.add(p + "kv_a_layernorm.weight", {rkv}, TensorRole::Norm, li);
  b.add(p + "kv_b_proj.weight", {nh * (c.qk_nope_head_dim + c.v_head_dim), rkv}, TensorRole::Linear, li);
  b.add(p + "dense.weight", {H, nh * c.v_head_dim}, TensorRole::Linear, li);
  if (c.use_qkv_bias) b.add(p + "dense.bias", {H}, TensorRole::Bias, li);
}

void attention_deepseek(Builder& b, const std::string& p, int li) {
  const ModelConfig& c = b.c;
  const int64_t H = c.hidden_size, nh = c.num_attention_heads, dqk = c.qk_head_dim();
  if (c.q_lora_rank > 0) {
    b.add(p + "q_a_proj.weight", {c.q_lora_rank, H}, TensorRole::Linear, li);
    b.add(p + "q_a_layernorm.weight", {c.q_lora_rank}, TensorRole::Norm, li);
    b.add(p + "q_b_proj.weight", {nh * dqk, c.q_lora_rank}, TensorRole::Linear, li);
  } else {
    b.add(p + "q_proj.weight", {nh * dqk, H}, TensorRole::Linear, li);
  }
  b.add(p + "kv_a_proj_with_mqa.weight", {c.kv_lora_rank + c.qk_rope_head_dim, H}, TensorRole::Linear, li);
  b.add(p + "kv_a_layernorm.weight", {c.kv_lora_rank}, TensorRole::Norm, li);
  b.add(p + "kv_b_proj.weight", {nh * (c.qk_nope_head_dim + c.v_head_dim), c.kv_lora_rank}, TensorRole::Linear, li);
  b.add(p + "o_proj.weight", {H, nh * c.v_head_dim}, TensorRole::Linear, li);
}

void ffn(Builder& b, const std::string& p, const LayerSpec& l) {
  const ModelConfig& c = b.c;
  const int64_t H = c.hidden_size;
  const int li = l.index;
  if (l.ffn == FfnKind::Dense) {
    b.add(p + "gate_proj.weight", {c.intermediate_size, H}, TensorRole::Linear, li);
    b.add(p + "up_proj.weight", {c.intermediate_size, H}, TensorRole::Linear, li);
    b.add(p + "down_proj.weight", {H, c.intermediate_size}, TensorRole::Linear, li);
    return;
  }
  const int64_t E = c.num_experts, I = c.moe_intermediate_size;
  const bool ds = c.family == Family::DeepseekV3;
  b.add(p + "gate.weight", {E, H}, TensorRole::Router, li);
  if (c.moe_router_enable_expert_bias)
    b.add(p + (ds ? "gate.e_score_correction_bias" : "gate.expert_bias"), {E}, TensorRole::RouterBias, li);
  for (int64_t e = 0; e < E; ++e) {
    const std::string ep = p + "experts." + std::to_string(e) + ".";
    b.add(ep + "gate_proj.weight", {I, H}, TensorRole::Linear, li);
    b.add(ep + "up_proj.weight", {I, H}, TensorRole::Linear, li);
    b.add(ep + "down_proj.weight", {H, I}, TensorRole::Linear, li);
  }
  if (c.num_shared_experts > 0) {
    const int64_t S = c.shared_expert_width();
    b.add(p + "shared_experts.gate_proj.weight", {S, H}, TensorRole::Linear, li);
    b.add(p + "shared_experts.up_proj.weight", {S, H}, TensorRole::Linear, li);
    b.add(p + "shared_experts.down_proj.weight", {H, S}, TensorRole::Linear, li);
  }
}

}  // namespace

std::vector<TensorSpec> tensor_schema(const ModelConfig& c, bool include_mtp) {
  std::vector<TensorSpec> out;
  Builder b{c, out};
  const int64_t H = c.hidden_size, V = c.vocab_size;
  const bool ds = c.family == Family::DeepseekV3;
  b.add(ds ? "model.embed_tokens.weight" : "model.word_embeddings.weight", {V, H}, TensorRole::Embedding, -1);
  b.add("model.norm.weight", {H}, TensorRole::Norm, -1);
  if (!c.tie_word_embeddings) b.add("lm_head.weight", {V, H}, TensorRole::Embedding, -1);
  for (const LayerSpec& l : c.layers) {
    if (l.mtp && !include_mtp) continue;
    const std::string p = "model.layers." + std::to_string(l.index) + ".";
    b.add(p + "input_layernorm.weight", {H}, TensorRole::Norm, l.index);
    b.add(p + "post_attention_layernorm.weight", {H}, TensorRole::Norm, l.index);
    if (ds) attention_deepseek(b, p + "self_attn.", l.index);
    else attention_ling(b, p + "attention.", l);
    ffn(b, p + "mlp.", l);
    if (l.mtp) {
      b.add(p + "enorm.weight", {H}, TensorRole::Norm, l.index);
      b.add(p + "hnorm.weight", {H}, TensorRole::Norm, l.index);
      b.add(p + "eh_proj.weight", {H, 2 * H}, TensorRole::Linear, l.index);
      b.add(p + (ds ? "shared_head.norm.weight" : "final_layernorm.weight"), {H}, TensorRole::Norm, l.index);
    }
  }
  return out;
}

}  // namespace ling
