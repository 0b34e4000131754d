// Accounting formulas; see accounting.h for the definitions and architecture.md §5.3 for the counting rules.
#include "ling/model/accounting.h"

#include "ling/model/schema.h"

namespace ling {

ParamCounts count_params(const ModelConfig& c) {
  ParamCounts p;
  for (const TensorSpec& s : tensor_schema(c, false)) {
    int64_t n = 1;
    for (int64_t d : s.shape) n *= d;
    p.total += n;
    if (s.name == "model.word_embeddings.weight" || s.name == "model.embed_tokens.weight") p.embedding = n;
    if (s.name == "lm_head.weight") p.lm_head = n;
    if (s.name == "model.norm.weight") p.final_norm = n;
  }
  const int64_t expert = 3 * c.hidden_size * c.moe_intermediate_size;
  int64_t inactive = 0;
  for (const LayerSpec& l : c.layers)
    if (!l.mtp && l.ffn == FfnKind::MoE) inactive += (c.num_experts - c.num_experts_per_tok) * expert;
  p.active = p.total - inactive;
  p.active_non_embedding = p.active - p.embedding - p.lm_head - p.final_norm;
  return p;
}

LayerCounts count_layers(const ModelConfig& c) {
  LayerCounts n;
  for (const LayerSpec& l : c.layers) {
    if (l.mtp) { ++n.mtp; continue; }
    if (l.attn == AttnKind::GQA) ++n.gqa;
    if (l.attn == AttnKind::MLA) ++n.mla;
    if (l.attn == AttnKind::Lightning) ++n.lightning;
    if (l.ffn == FfnKind::Dense) ++n.dense_ffn; else ++n.moe_ffn;
  }
  return n;
}

int64_t kv_cache_bytes_per_token(const ModelConfig& c, const CacheDtypes& d) {
  const LayerCounts n = count_layers(c);
  const int64_t gqa = 2 * c.num_key_value_heads * c.head_dim;
  const int64_t mla = c.kv_lora_rank + c.qk_rope_head_dim;
  return (n.gqa * gqa + n.mla * mla) * d.kv_bytes;
}

int64_t linear_state_bytes_per_sequence(const ModelConfig& c, const CacheDtypes& d) {
  return int64_t(count_layers(c).lightning) * c.num_attention_heads * c.head_dim * c.head_dim * d.state_bytes;
}

int64_t cache_crossover_context(const ModelConfig& c, const CacheDtypes& d) {
  const int64_t kv = kv_cache_bytes_per_token(c, d), state = linear_state_bytes_per_sequence(c, d);
  if (kv == 0 || state == 0) return 0;
  return (state + kv - 1) / kv;
}

FlopsPerToken flops_per_token(const ModelConfig& c, int64_t context, int64_t chunk) {
  const ParamCounts p = count_params(c);
  const double matmul = 2.0 * double(p.active_non_embedding + p.lm_head);
  const LayerCounts n = count_layers(c);
  const double nh = double(c.num_attention_heads), hd = double(c.head_dim), ctx = double(context);
  const double gqa_decode = 4.0 * nh * hd * ctx;
  const double gqa_prefill = 4.0 * nh * hd * ctx / 2.0;
  const double mla_decode = 2.0 * nh * double(c.kv_lora_rank + c.qk_rope_head_dim) * ctx + 2.0 * nh * double(c.kv_lora_rank) * ctx;
  const double mla_prefill = 2.0 * nh * double(c.qk_head_dim() + c.v_head_dim) * ctx / 2.0;
  const double lin_decode = 4.0 * nh * hd * hd;
  const double lin_prefill = nh * (4.0 * double(chunk) * hd + 4.0 * hd * hd);
  FlopsPerToken f;
  f.decode = matmul + n.gqa * gqa_decode + n.mla * mla_decode + n.lightning * lin_decode;
  f.prefill = matmul + n.gqa * gqa_prefill + n.mla * mla_prefill + n.lightning * lin_prefill;
  return f;
}

}  // namespace ling
