// Config-derived parameters that every backend computes the same way: the RoPE frequency parameters
// (architecture.md §2.5, §2.8 YaRN) for ref::rope_freqs, and the MoE routing of router logits (§2.4).
#pragma once
#include <vector>

#include "ling/core/error.h"

#include "ling/engine/backend.h"
#include "ling/engine/rope.h"

#include "ling/model/config.h"
#include "ling/ref/ops.h"

namespace ling {

// Lightning log decays g of the heads this backend holds in layer `il` (architecture.md §2.6 steps 5–6): the
// slopes of the model's global head count, taken from the backend's head offset under tensor parallelism.
inline std::vector<float> lightning_decays(const ModelConfig& c, int64_t il, const BackendOptions& o) {
  const int64_t total = o.total_heads > 0 ? o.total_heads : c.num_attention_heads;
  const std::vector<float> all =
      ref::lightning_log_decay(lightning_slopes(total), lightning_decay_factor(c.decay, il, c.num_hidden_layers));
  LING_CHECK(o.head_offset >= 0 && o.head_offset + c.num_attention_heads <= total,
             "internal error: heads [", o.head_offset, ", ", o.head_offset + c.num_attention_heads, ") of ", total);
  return std::vector<float>(all.begin() + o.head_offset, all.begin() + o.head_offset + c.num_attention_heads);
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
