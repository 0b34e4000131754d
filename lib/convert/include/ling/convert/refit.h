// Closed-form output-projection refit for a converted attention layer (the math of `ling convert --refit`;
// the data pass that gathers the sums is calib/refit.h). With o_t the converted layer's attention output
// before the projection ([m] = nh·d_v per token) and y_t the target the projection should produce ([H]), the
// ridge least-squares projection is
//   W = argmin_W Σ_t ‖y_t − W o_t‖² + λ‖W‖²  =  Bᵀ (A + λI)^−1,   A = Σ o oᵀ [m, m], B = Σ o yᵀ [m, H],
// λ = ridge · tr(A)/m. Only the fp64 sums A, B and Σ‖y‖² are kept, so memory does not depend on the number of
// tokens. The residual Σ‖y − W o‖² = Σ‖y‖² − 2 tr(W B) + tr(W A Wᵀ) follows from the same sums.
//
// Key up-projection refit (per query head h, W = W_UK,h [d, r]): the converted logit of query t and key s is
// ℓ'_ts = a_tᵀ W c_s + ℓpe_ts (a_t the scaled q_nope, c_s the normalised latent, ℓpe the RoPE part). To second
// order, KL(p_t ‖ p'_t) = ½ Var_{s∼p_t}(ℓ_ts − ℓ'_ts) with p_t the source attention row, so W minimises
//   Σ_t Σ_s p_ts (a_tᵀ W (c_s − c̄_t) − (u_ts − ū_t))²,  u = ℓ_src − ℓpe, c̄_t = E_p[c], ū_t = E_p[u],
// a least-squares problem in vec(W) (row-major, index i·r + j) with normal matrix Σ_t (a_t a_tᵀ) ⊗ C_t,
// C_t = Cov_p(c), and right side Σ_t a_t ⊗ Cov_p(c, u); solved with a ridge toward the current W
// (λ = ridge·tr(G)/(d·r)). Memory (d·r)² fp64 per head, independent of the number of tokens.
#pragma once
#include <cstdint>
#include <vector>

#include "ling/convert/linalg.h"

namespace ling::convert {

struct ProjectionSums {
  MatD oo;         // [m, m] Σ o oᵀ (both triangles)
  MatD oy;         // [m, H] Σ o yᵀ
  double yy = 0;   // Σ ‖y‖²
  double tokens = 0;
  void init(int64_t m, int64_t H);
  // Add n rows: o [n, m], y [n, H] (row-major fp32).
  void add(const float* o, const float* y, int64_t n);
};

// The ridge solution W [H, m] (row-major, as a Linear weight). With w0 ([H, m]) the ridge pulls toward w0
// instead of 0: W = (Bᵀ + λ·W0)(A + λI)^−1. Throws when the sums hold no tokens.
MatD ridge_projection(const ProjectionSums& s, double ridge, const float* w0 = nullptr);
// Σ‖y − W o‖² / Σ‖y‖² for a projection W [H, m] (float weights, row-major).
double projection_rel_error(const ProjectionSums& s, const float* w, int64_t H, int64_t m);

struct KeyRefitSums {
  int64_t d = 0, r = 0;
  std::vector<double> G;  // [(d·r)²]
  std::vector<double> b;  // [d·r]
  double rows = 0;
  double uu = 0;          // Σ_t Var_p(u): the objective at W = 0
  void init(int64_t d_, int64_t r_);
  // One query row: a [d], latent c [m, r] of its m visible keys, targets u [m], source probabilities p [m].
  void add_row(const double* a, const double* c, const double* u, const double* p, int64_t m);
};
// The full symmetric normal matrix [(d·r)²] (add_row fills the blocks k ≥ i only).
std::vector<double> key_refit_normal(const KeyRefitSums& s);
// The objective at W divided by its value at W = 0 (Σ_t Var_p(u)).
double key_refit_rel_objective(const KeyRefitSums& s, const std::vector<double>& w);
// The refit W [d, r] (row-major); w0 the current W (the ridge pulls toward it).
std::vector<double> solve_key_refit(const KeyRefitSums& s, const std::vector<double>& w0, double ridge);

}  // namespace ling::convert
