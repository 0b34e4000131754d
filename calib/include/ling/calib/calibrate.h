// `ling calibrate` as a library call: run a Ling 2.0 GQA model over calibration text and gather, per GQA layer,
// the statistics `ling convert` needs (conversion.md §7 steps 1–2), in two passes over the same windows:
//   pass 1, the model as it is: pre-norm q/k sums for every QK-norm fusion method (qk_fusion.h), including
//           attention-logit pairs and the KL grid on a sample of query rows per window;
//   pass 2, the model with its QK-norm fused by `method` (as the converted model will see its inputs):
//           fp64 Σ [k ‖ v][k ‖ v]ᵀ and Σ q qᵀ of the fused projections.
// Statistics are sums, so memory does not depend on the number of tokens. The layer inputs come from the
// engine observer (blk.L.attn_in); the projections are recomputed on the host from the same weights.
#pragma once
#include <cstdint>
#include <functional>
#include <string>

#include "ling/convert/calibration.h"
#include "ling/convert/qk_fusion.h"

namespace ling::calib {

struct CalibOptions {
  std::string model;                 // model folder
  std::string data;                  // UTF-8 text file, tokenised with the model's tokenizer
  int64_t tokens = 32768;            // calibration tokens (whole windows, taken from the start of the text)
  int64_t seq_len = 512;             // window length
  convert::QkMethod method = convert::QkMethod::Kl;  // fusion used for pass 2
  std::string backend = "cpu";       // cpu | cuda (the engine that produces the layer inputs)
  int threads = 0;
  bool q_cov = true;                 // gather Σ q qᵀ (needed for --q-lora-rank)
  int64_t logit_rows = 128;          // query rows per window sampled for the logit and KL statistics
};

convert::Calibration calibrate(const CalibOptions& opt, const std::function<void(const std::string&)>& log = {});

}  // namespace ling::calib
