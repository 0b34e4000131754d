// Pass-1 accumulation of QK-norm statistics for one window of one GQA layer (qk_fusion.h defines the sums).
#pragma once
#include <cstdint>

#include "ling/convert/qk_fusion.h"
#include "ling/model/config.h"
#include "ling/ref/ops.h"

namespace ling::calib {

class QkAccumulator {
 public:
  QkAccumulator(const ModelConfig& c, const ref::RopeFreqs& rf, int64_t logit_rows);
  // qkv: [n, (nh + 2·nkv)·d] pre-norm projections of one window (positions 0..n−1); gq/gk: QK-norm gains or
  // null when the model has none (then only the RMS sums are meaningful).
  void add(convert::QkStats& s, const float* qkv, int64_t n, const float* gq, const float* gk) const;
  // lsq: Σ x xᵀ and Σ x v̂ᵀ with v̂ the normed q and k heads (x: [n, H] layer input).
  // lsq pass 2: KL grid of the refit model's attention rows (qkv_fused, no QK-norm) against the normed model's
  // (qkv_orig with gq/gk) on the same inputs.
  void add_temperature(convert::QkStats& s, const float* qkv_orig, const float* qkv_fused, int64_t n,
                       const float* gq, const float* gk) const;
  void add_refit(convert::QkStats& s, const float* x, const float* qkv, int64_t n, const float* gq,
                 const float* gk) const;

 private:
  int64_t nh_, nkv_, d_, rd_, rows_, H_;
  double eps_;
  float scale_;
  const ref::RopeFreqs& rf_;
};

}  // namespace ling::calib
