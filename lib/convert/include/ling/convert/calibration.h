// The calibration file of `ling calibrate` (a safetensors file of fp64 statistics) and the model fingerprint
// that ties it to one checkpoint. Per GQA layer L:
//   layer.L.qk.<field>   QkStats sums ([nh] or [nkv]; kl_sum [nh, kKlGrid]; rot_cos/rot_sin [nh, rd/2];
//                        counts [3] = tokens, pairs, kl_rows)
//   layer.L.kv_cov       [2·nkv·d, 2·nkv·d] Σ [k ‖ v][k ‖ v]ᵀ of the QK-norm-fused model (pass 2)
//   layer.L.q_cov        [nh·d, nh·d] Σ q qᵀ of the fused model (absent with --no-q-cov)
//   layer.L.kv_tokens    [1] tokens behind the covariances
// Metadata: format "ling-calib-1", fingerprint, qk_method (the fusion the pass-2 model used), tokens, seq_len,
// data_sha256, model. Memory of the statistics does not depend on the number of calibration tokens.
#pragma once
#include <map>
#include <string>

#include "ling/convert/mla.h"
#include "ling/convert/qk_fusion.h"

namespace ling {
struct ModelConfig;
class Checkpoint;
}  // namespace ling

namespace ling::convert {

struct LayerCalibration {
  QkStats qk;
  KvCovariance cov;
};

struct Calibration {
  std::map<std::string, std::string> meta;
  std::map<int, LayerCalibration> layers;  // GQA layer index → statistics
};

void save_calibration(const std::string& path, const Calibration& c);  // atomic
Calibration load_calibration(const std::string& path);                // throws naming file and tensor

// sha256 over the model's parsed config (canonical JSON of the fields that shape attention) and the first
// 64 KiB of every layer's query_key_value weight: cheap, and different for another model or another training.
std::string model_fingerprint(const ModelConfig& config, const Checkpoint& ckpt);

}  // namespace ling::convert
