// The one conversion from the Lightning kernel params (kernels/include/ling/kernels/lightning.h) to the
// reference params (ling::ref::LightningParams): same sizes, strides, scale and decays, host fp32 buffers.
#pragma once
#include "ling/kernels/lightning.h"
#include "ling/ref/ops.h"

namespace ling::test {

struct LightningHost {  // host fp32 mirrors of the kernel's buffers
  const float *q, *k, *v, *g;
  float *o, *state;
};

// Prefill: the whole sequence, state [nh, 128, 128].
inline ref::LightningParams to_ref(const kernels::LightningPrefillParams& p, const LightningHost& h) {
  ref::LightningParams r;
  r.q = h.q, r.k = h.k, r.v = h.v, r.o = h.o, r.state = h.state, r.g = h.g;
  r.T = p.T, r.nh = p.nh, r.d = kernels::kLightningHeadDim;
  r.ldq = p.ldq, r.ldk = p.ldk, r.ldv = p.ldv, r.ldo = p.ldo;
  r.scale = p.scale;
  r.chunk = kernels::kLightningChunk;
  r.bf16_operands = !p.exact;
  return r;
}

// Decode: sequence b of the batch as a one-token sequence with its own state [nh, 128, 128].
inline ref::LightningParams to_ref(const kernels::LightningDecodeParams& p, const LightningHost& h, int64_t b) {
  const int64_t d = kernels::kLightningHeadDim, w = p.nh * d;
  ref::LightningParams r;
  r.q = h.q + b * (p.ldq ? p.ldq : w);
  r.k = h.k + b * (p.ldk ? p.ldk : w);
  r.v = h.v + b * (p.ldv ? p.ldv : w);
  r.o = h.o + b * (p.ldo ? p.ldo : w);
  r.state = h.state + b * p.nh * d * d;
  r.g = h.g;
  r.T = 1, r.nh = p.nh, r.d = d;
  r.scale = p.scale;
  return r;
}

}  // namespace ling::test
