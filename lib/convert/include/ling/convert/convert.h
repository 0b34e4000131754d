// `ling convert` as a library call: a Ling 2.0 (BailingMoeV2, GQA) checkpoint folder → a BailingMoeV2_5 folder
// (architecture.md §4 names and shapes), streaming. Per layer only the attention tensors are held in memory
// (fp64 while converting); every other tensor is copied through in 64 MiB pieces and the source pages are
// released after use, so peak memory is about one layer's attention weights plus the calibration statistics.
//   to = "mla":    every layer MLA (layer_group_size 1)
//   to = "hybrid": layers with (i+1) % G != 0 (and not in a trailing partial group) become Lightning (qkv
//                  expanded to full heads by copying each KV head to its query heads, QK-norm and partial RoPE
//                  kept, g_proj zero = gate 0.5, g_norm ones: untrained after conversion), the rest MLA.
// MLA layers: QK-norm fused (qk_fusion.h) with the chosen method, then gqa_to_mla (mla.h) on the calibration
// covariances. Without a calibration file the statistics are taken from the weights alone (input covariance
// diag(γ_in²), i.e. an isotropic normalised input; only the `ant` QK method applies): a data-free conversion.
// The output folder is written under a temporary name and renamed at the end; on any error nothing is left
// under the final name. Returns the per-layer report (also saved as conversion.json in the output).
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "ling/convert/qk_fusion.h"

namespace ling::convert {

struct ConvertOptions {
  std::string in, out;
  std::string to = "mla";             // mla | hybrid
  int64_t kv_lora_rank = 0;
  int64_t q_lora_rank = 0;            // 0 = q_proj
  int64_t layer_group_size = 8;       // hybrid only
  int64_t group_norm_size = 0;        // hybrid: 0 = 4 when it divides nh·hd, else 1
  std::string calib;                  // calibration file ("" = data-free statistics)
  std::optional<QkMethod> qk_method;  // default: the calibration's pass-2 method (ant when data-free)
  double balance_kv_ratio = 1.0;
  bool force = false;                 // replace an existing output folder
  bool plain_pca = false;             // TransMLA's plain BKV-PCA instead of the query/output-weighted one
  bool no_expected_rotation = false;  // keep TransMLA's plain NoPE residue (no expected-rotation fold)
  bool linear_latent_norm = false;    // MlaOptions::linear_latent_norm
  // Called with the complete temporary output folder before it is renamed to `out` (e.g. the data refit of
  // calib/refit.h, which rewrites tensors in place); its result is stored as "refit" in conversion.json. An
  // exception leaves nothing under `out`.
  std::function<nlohmann::json(const std::string& folder)> finish;
};

// Throws ling::Error with one line (file, tensor or option, what is wrong).
nlohmann::json convert_checkpoint(const ConvertOptions& opt, const std::function<void(const std::string&)>& log = {});

}  // namespace ling::convert
