// The one conversion from the flash-attention kernel params (kernels/include/ling/kernels/attention.h) to the
// reference params (ling::ref::AttentionParams): same sizes, strides and scale over host fp32 buffers, with the
// consecutive query positions qpos[i] = q_pos0 + i of a chunk that continues a cache of q_pos0 tokens.
#pragma once
#include <vector>

#include "ling/kernels/attention.h"
#include "ling/ref/ops.h"

namespace ling::test {

struct AttentionHost {  // host fp32 mirrors of the kernel's buffers (bf16 inputs already rounded)
  const float *q, *k, *v;
  float* o;
};

// qpos receives the positions (it must outlive the returned params).
inline ref::AttentionParams to_ref(const kernels::FlashAttentionParams& p, const AttentionHost& h,
                                   std::vector<int64_t>& qpos) {
  qpos.resize(size_t(p.T));
  for (int64_t i = 0; i < p.T; ++i) qpos[size_t(i)] = p.q_pos0 + i;
  ref::AttentionParams r;
  r.q = h.q, r.k = h.k, r.v = h.v, r.o = h.o, r.qpos = qpos.data();
  r.T = p.T, r.S = p.S, r.nh = p.nh, r.nkv = p.nkv, r.dk = p.dk, r.dv = p.dv;
  r.ldq = p.ldq, r.ldk = p.ldk, r.ldv = p.ldv, r.ldo = p.ldo;
  r.scale = p.scale;
  return r;
}

}  // namespace ling::test
