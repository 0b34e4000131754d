// QK-norm removal by fusion (conversion.md §1.1, §4): the per-head RMSNorm on q and k (gain γ, per-token factor
// s(v) = (mean v² + ε)^−½) is replaced by a constant folded into the projection rows, W' = c·diag(γ)·W.
// γ folds exactly; the per-token factor can only be approximated. Methods for the constant (§4.3):
//   ant      one scalar per projection from the pooled RMS, c = (E_{tokens,dims,heads}[v²] + ε)^−½ (Ant eqs. 1–2)
//   inv-rms  per head c = E_t[s(v_t)]
//   vec-mse  per head c = E[‖γ⊙v‖²·s(v)] / E[‖γ⊙v‖²]  (minimises E‖q̂ − c·γ⊙q‖²)
//   logit    per query head, the product c_q·c_k fitted by least squares to the normed attention logits over
//            causal pairs; c_k = inv-rms of its KV head
//   kl       per query head, the product c_q·c_k that minimises the KL divergence between the normed model's
//            attention rows and the fused ones (grid over 2^[−2, 2] × a reference product, refined by a
//            parabola in log scale); c_k = inv-rms
//   lsq      per projection row, a ridge least-squares refit of the q and k rows to the normed outputs,
//            W' = argmin Σ_t ‖γ⊙v_t·s(v_t) − W'x_t‖² + λ‖W'‖² (λ = 1e-2·tr(Σxxᵀ)/H), from Σ x xᵀ and Σ x v̂ᵀ
//            gathered per layer (H² + H·(nh + nkv)·d fp64 values per layer)
// The sums are gathered by `ling calibrate` (calib/) into QkStats; this file turns them into constants and
// folds them.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace ling::convert {

enum class QkMethod { Ant, InvRms, VecMse, Logit, Kl, Lsq };
const char* qk_method_name(QkMethod m);
QkMethod parse_qk_method(const std::string& name);  // throws listing the valid names
std::vector<QkMethod> all_qk_methods();

constexpr int kKlGrid = 33;
// Multiplier of the reference product at grid point i: 2^(−2 + 4i/(kKlGrid−1)).
double kl_grid_multiplier(int i);

// Calibration sums of one GQA layer (pass 1, the model with its QK-norm).
struct QkStats {
  int64_t nh = 0, nkv = 0, d = 0;
  double tokens = 0;                        // N
  std::vector<double> q_sumsq, k_sumsq;     // [nh], [nkv]: Σ_t Σ_j v_tj²
  std::vector<double> q_sum_s, k_sum_s;     // Σ_t s(v_t)
  std::vector<double> q_sum_g2s, k_sum_g2s; // Σ_t ‖γ⊙v_t‖²·s(v_t)
  std::vector<double> q_sum_g2, k_sum_g2;   // Σ_t ‖γ⊙v_t‖²
  std::vector<double> logit_xy, logit_yy;   // [nh]: Σ ℓ̂·ℓ and Σ ℓ² over sampled causal pairs
  std::vector<double> kl_ref;               // [nh] reference product of the KL grid (0 = not set yet)
  std::vector<double> kl_sum;               // [nh, kKlGrid]: Σ over sampled rows of KL(p_normed ‖ p_c)
  // [nh, rd/2]: Σ over sampled rows of E_p[cos(θ_i·Δ)] and E_p[sin(θ_i·Δ)] (× attention_factor²), p the normed
  // model's attention row, Δ = query − key position: the expected rotation of frequency i as a head sees it.
  std::vector<double> rot_cos, rot_sin;
  // lsq only: Σ x xᵀ [H, H] and Σ x v̂ᵀ [H, (nh + nkv)·d] (v̂ the normed q heads then k heads), else empty.
  std::vector<double> xx, xy;
  // lsq only, pass 2: Σ over sampled rows of KL(p_normed ‖ softmax(m·logits of the refit model)) for the grid
  // multipliers m = kl_grid_multiplier(i) [nh, kKlGrid], and the row count: a per-head temperature for the refit.
  std::vector<double> t_kl;
  double t_rows = 0;
  double pairs = 0, kl_rows = 0;

  void init(int64_t nh_, int64_t nkv_, int64_t d_, int64_t rd_ = 0);
};

// Replace the q and k rows of a GQA qkv weight by the lsq refit (QkStats::xx, xy), then, when the pass-2
// temperature statistics are present, multiply each query head by its KL-optimal temperature.
// Throws without the refit statistics.
void refit_qk(float* qkv, int64_t H, int64_t nh, int64_t nkv, int64_t d, const QkStats& s);
// The KL-optimal multiplier of each query head from t_kl (1 when absent).
std::vector<double> lsq_temperatures(const QkStats& s);

struct QkScales {
  std::vector<double> q, k;  // [nh], [nkv]
};
QkScales qk_scales(const QkStats& s, QkMethod m, double eps);

// Fold γ and the constants into a GQA qkv weight [(nh + 2·nkv)·d, H] (rows [Q heads | K heads | V heads]) and
// its optional bias, in place. V rows are untouched.
void fold_qk_norm(float* qkv, float* bias, int64_t H, int64_t nh, int64_t nkv, int64_t d, const float* gamma_q,
                  const float* gamma_k, const QkScales& c);

}  // namespace ling::convert
