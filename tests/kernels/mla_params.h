// The one conversion from the MLA decode kernel params (kernels/include/ling/kernels/mla_decode.h) to the
// reference params (ling::ref::MlaDecodeParams) for sequence b: the reference takes the un-absorbed query
// [q_nope ‖ q_pe] and kv_b_proj, the gathered (contiguous, fp32) cache rows of b and the query position len − 1.
#pragma once
#include "ling/kernels/mla_decode.h"
#include "ling/ref/ops.h"

namespace ling::test {

constexpr int64_t kMlaNope = 128, kMlaV = 128;  // Ling-2.5-1T qk_nope_head_dim, v_head_dim

struct MlaHost {
  const float* q_full;     // [B, nh, 128 + 64]: q_nope ‖ q_pe
  const float* kv_b;       // [nh · (128 + 128), 512]
  const float* cache_b;    // [len_b, 576] rows of sequence b, fp32
  const int64_t* qpos;     // {len_b − 1}
  float* o;                // [nh, 128]
};

inline ref::MlaDecodeParams to_ref(const kernels::MlaDecodeParams& p, const MlaHost& h, int64_t b, int64_t len) {
  ref::MlaDecodeParams r;
  r.q = h.q_full + b * p.nh * (kMlaNope + kernels::kMlaRope);
  r.cache = h.cache_b;
  r.kv_b = h.kv_b;
  r.o = h.o;
  r.qpos = h.qpos;
  r.T = 1, r.S = len, r.nh = p.nh;
  r.dn = kMlaNope, r.dr = kernels::kMlaRope, r.dv = kMlaV, r.r = kernels::kMlaLatent;
  r.scale = p.scale;
  return r;
}

}  // namespace ling::test
