// Sequential, error-correcting refit of the output projections (`dense`) of a converted model's MLA layers
// (`ling convert --refit`). Layer by layer in order, the converted model (with the projections of the earlier
// layers already refit) and the source model run over the same calibration windows; per token the converted
// layer's attention output before `dense` (recomputed on the host from blk.L.attn_in, exactly as the CPU
// backend does) is paired with a target and the projection is refit in closed form (convert/refit.h):
//   dense           target = the source layer's attention output (blk.L.attn_out)
//   dense-residual  target = source attn_out + (source residual − converted residual) before the layer
//                   (blk.(L−1).out), so the layer also cancels the drift the earlier layers left behind
//   keys            first the key up-projections W_UK,h (kv_b key rows) by the second-order KL fit of
//                   convert/refit.h against the source attention rows (sampled query rows per window)
//   inputs          first the input correction M = argmin Σ‖x_src − M x'‖² + λ‖M − I‖² (source vs converted
//                   layer input) folded into q_proj / q_a_proj and kv_a_proj_with_mqa (W ← W·M)
//   temperature     a per-head multiplier of the query rows, KL-optimal against the source attention rows
//                   (grid of qk_fusion.h over sampled query rows)
//   Steps chain with '+' in the order inputs, keys, temperature, dense*: e.g. temperature+dense-residual.
// Because every layer sees the inputs the converted earlier layers produce, later layers compensate earlier
// errors (GPTQ-style). Every refit is a ridge least squares pulled toward the weights it replaces. Sums are
// fp64 and per layer, so memory does not depend on the number of tokens; the
// cost is two forward passes of the calibration text per MLA layer. Lightning layers are left as they are.
#pragma once
#include <cstdint>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "ling/engine/weights.h"
#include "ling/model/config.h"
#include "ling/ref/ops.h"

namespace ling::calib {

struct RefitOptions {
  std::string source;          // source GQA model folder (targets and tokenizer)
  std::string data;            // calibration text (training text)
  std::string target = "dense";  // dense | dense-residual
  int64_t tokens = 16384;      // whole windows from the start of the text
  int64_t seq_len = 512;
  double ridge = 1.0;          // λ = ridge·tr(normal matrix)/unknowns (dense and keys); the ridge pulls toward the
                               // converted weights, so a large ridge keeps them
  int64_t rows = 64;           // keys, temperature: query rows sampled per window
  int threads = 0;
};

// The steps of a --refit target ('+'-list: inputs, keys, temperature, then dense or dense-residual, in order).
struct RefitSteps {
  bool inputs = false, keys = false, temperature = false;
  std::string dense;  // "", "dense" or "dense-residual"
};
RefitSteps parse_refit_target(const std::string& target);  // throws one line for anything else

// Checks the option values (one-line ling::Error).
void check_refit_options(const RefitOptions& o);

// Rewrites `folder` (a complete converted model: config.json + model.safetensors) in place: the refit
// projections replace attention.dense.weight of every MLA layer (model.safetensors replaced atomically).
// Returns a per-layer report (relative error of the projection before and after the refit on the calibration
// sums).
nlohmann::json refit_converted(const RefitOptions& o, const std::string& folder,
                               const std::function<void(const std::string&)>& log = {});

// The converted layer's query (RoPE applied, [n, nh, d_nope + d_rope]) and latent row (normalised latent then
// the RoPE'd k_pe, [n, r + d_rope]) for x [n, H] at positions 0..n−1, and the softmax scale.
struct MlaParts {
  std::vector<float> q, ckv;
  float scale = 1;
};
MlaParts mla_parts(const ModelConfig& c, const LayerWeights& L, const ref::RopeFreqs& rf, const float* x, int64_t n);

// The MLA attention output before the output projection, o [n, nh·d_v], for one sequence x [n, H] at positions
// 0..n−1: the CPU backend's prefill path (latent norms applied, interleaved RoPE, causal softmax).
std::vector<float> mla_attention_core(const ModelConfig& c, const LayerWeights& L, const ref::RopeFreqs& rf,
                                      const float* x, int64_t n);

}  // namespace ling::calib
