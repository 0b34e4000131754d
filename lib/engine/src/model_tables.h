// Config-derived parameters that every backend computes the same way: the RoPE frequency parameters
// (architecture.md §2.5, §2.8 YaRN) for ref::rope_freqs, and the MoE routing of router logits (§2.4).
#pragma once
#include <vector>

#include "ling/engine/backend.h"

#include "ling/model/config.h"
#include "ling/ref/ops.h"

namespace ling {

inline ref::RopeFreqParams rope_freq_params(const ModelConfig& c) {
  ref::RopeFreqParams rp;
  rp.rope_dim = c.rope_dim();
  rp.theta = c.rope_theta;
  if (c.rope_scaling) {
    const RopeScaling& s = *c.rope_scaling;
    rp.yarn = true;
    rp.factor = s.factor;
    rp.original_max_position_embeddings = s.original_max_position_embeddings;
    rp.beta_fast = s.beta_fast;
    rp.beta_slow = s.beta_slow;
    rp.mscale = s.mscale.value_or(0.0);
    rp.mscale_all_dim = s.mscale_all_dim.value_or(0.0);
    rp.attention_factor = s.attention_factor.value_or(0.0);
  }
  return rp;
}

// Routes n tokens from their fp32 router logits [n, E] (ref::moe_route: sigmoid, bias for selection, group
// top-k, renormalised and scaled weights); fills ids/weights [n, k] and the optional trace.
inline void route_tokens(const ModelConfig& c, const float* logits, const float* router_bias, int64_t n,
                         std::vector<int32_t>& ids, std::vector<float>& weights, MoeTrace* trace) {
  const int64_t k = c.num_experts_per_tok;
  ids.assign(size_t(n * k), 0);
  weights.assign(size_t(n * k), 0.0f);
  ref::MoeRouteParams rp;
  rp.logits = logits; rp.bias = router_bias; rp.topk_ids = ids.data(); rp.topk_weights = weights.data();
  rp.rows = n; rp.E = c.num_experts; rp.k = k; rp.n_group = c.n_group; rp.topk_group = c.topk_group;
  rp.routed_scaling_factor = c.routed_scaling_factor;
  ref::moe_route(rp);
  if (trace) {
    trace->ids.assign(ids.begin(), ids.end());
    trace->weights = weights;
  }
}

}  // namespace ling
