// Parameter, cache, state and FLOP accounting for a ModelConfig (architecture.md §5; performance.md §2).
// Parameters are summed from tensor_schema(), so the schema and the counts cannot disagree:
//   total      = every main-stack tensor (MTP layers excluded), embedding and lm_head included;
//   active     = total minus the routed experts not selected per token ((E − k) · 3 · H · I_moe per MoE layer);
//   active_non_embedding = active − word embedding − lm_head − final norm (the published definition).
// Caches: GQA layer 2·nkv·hd values/token, MLA layer r_kv + d_rope values/token, Lightning 0 (a constant
// nh·hd·hd state per sequence instead).
// FLOPs per token (multiply-add = 2 FLOPs), at context c:
//   matmuls: 2 · (active_non_embedding + lm_head) (embedding lookup is free; norms are negligible);
//   GQA / MLA attention, decode at c cached tokens: GQA 4·nh·hd·c; MLA absorbed 2·nh·(r_kv + d_rope)·c +
//     2·nh·r_kv·c (the absorption and W_UV matmuls equal kv_b_proj's 2·params, counted above);
//   prefill: the causal average over a prompt of c tokens, c/2 keys per query: GQA 4·nh·hd·c/2, MLA
//     non-absorbed 2·nh·(d_qk + d_v)·c/2;
//   Lightning: decode 4·nh·hd² (state update kᵀv and output q·S); chunked prefill (chunk C = 64)
//     nh·(4·C·hd + 4·hd²) (QKᵀ, masked (QKᵀ)V, Q·S, KᵀV) — constant in c.
#pragma once
#include <cstdint>
#include <vector>

#include "ling/model/config.h"

namespace ling {

struct ParamCounts {
  int64_t total = 0;
  int64_t active = 0;
  int64_t active_non_embedding = 0;
  int64_t embedding = 0;   // model.word_embeddings (V·H)
  int64_t lm_head = 0;     // 0 when tied
  int64_t final_norm = 0;
};
ParamCounts count_params(const ModelConfig& c);

struct CacheDtypes {
  int64_t kv_bytes = 2;     // bf16 = 2, fp8 = 1
  int64_t state_bytes = 4;  // fp32 = 4, bf16 = 2
};

int64_t kv_cache_bytes_per_token(const ModelConfig& c, const CacheDtypes& d = {});
int64_t linear_state_bytes_per_sequence(const ModelConfig& c, const CacheDtypes& d = {});
// Context (tokens) at which the softmax-layer cache of one sequence reaches its Lightning state; 0 when the
// model lacks either.
int64_t cache_crossover_context(const ModelConfig& c, const CacheDtypes& d = {});

struct LayerCounts {
  int gqa = 0, mla = 0, lightning = 0, dense_ffn = 0, moe_ffn = 0, mtp = 0;
};
LayerCounts count_layers(const ModelConfig& c);

struct FlopsPerToken {
  double prefill = 0;  // average per token of a prompt of `context` tokens
  double decode = 0;   // one new token with `context` tokens cached
};
FlopsPerToken flops_per_token(const ModelConfig& c, int64_t context, int64_t lightning_chunk = 64);

}  // namespace ling
