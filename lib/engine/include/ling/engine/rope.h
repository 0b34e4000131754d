// RoPE frequency parameters of a model (architecture.md §2.5, §2.8 YaRN) for ref::rope_freqs: one derivation
// shared by both backends and by calibration, so that every consumer rotates with the same frequencies.
#pragma once
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

}  // namespace ling
