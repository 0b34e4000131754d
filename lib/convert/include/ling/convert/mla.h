// GQA → MLA for one attention layer (conversion.md §2.2–2.3, §5, §7): RoRoPE on the rotated half of the keys,
// BKV-PCA of [K-NoPE residue ‖ native K-NoPE ‖ V] into the latent, the query folded, the softmax scale fixed.
// Inputs are the layer's QK-norm-free projections (after qk_fusion) and fp64 calibration covariances of the
// same projections; outputs are the official BailingMoeV2_5 MLA tensors (architecture.md §4) in fp64.
//
// Notation: L = nkv·d (GQA K width), rd = rotary dims per head (NeoX pairs (i, i + rd/2)), Lk = L − rd.
// For each frequency i the nkv complex key coordinates are rotated by the eigenvectors U_i of their covariance
// (real and imaginary parts as separate samples); component 0 of every frequency becomes the shared k_pe
// (interleaved pairs (2i, 2i+1), as DeepSeek-format MLA expects), the other nkv−1 join the NoPE pool.
// [E; A] (E: k_pe rows, A: pool rows) is orthogonal, so q_h·k_g = (E_g q_h)·k_pe + (A_g q_h)·pool exactly;
// only the pool components drawn from rotated dims lose their rotation (exact when nkv = 1 or when those
// components carry no energy). The pool is balanced against V (ratio of mean column norms, TransMLA's rule)
// and jointly PCA-compressed to kv_lora_rank; W_UK_h = ratio·A_gᵀ R_K, W_UV_h = R_V[g], q_nope_h = q_h,
// q_pe_h = E_g q_h, every query row × query_scale. The weighted variant (default when the query covariance is
// known) whitens the PCA so that it minimises the expected logit error of the queries and the error of V
// after the output projection instead of the plain K/V reconstruction error (see gqa_to_mla).
#pragma once
#include <cstdint>
#include <vector>

#include "ling/convert/linalg.h"

namespace ling::convert {

struct GqaLayer {
  int64_t H = 0, nh = 0, nkv = 0, d = 0, rd = 0;
  MatD wq, wk, wv;                 // [nh·d, H], [nkv·d, H], [nkv·d, H]; QK-norm already folded
  std::vector<double> bq, bk, bv;  // empty when the model has no qkv bias
  // Expected rotation per query head and frequency, [nh, rd/2] each (empty: none, i.e. cos 1, sin 0). The NoPE
  // pool components drawn from rotated dims keep no RoPE; their query side is multiplied by E[R(θ_i·Δ)] so that
  // the score keeps its expected value under the head's attention distances.
  std::vector<double> rot_cos, rot_sin;
  MatD wo;                         // dense [H, nh·d] (for the output-weighted PCA; empty: plain PCA)
};

// Calibration second moments (uncentred sums over tokens) of the same fused projections.
struct KvCovariance {
  MatD kv;           // [2L, 2L] of [k ‖ v] (k before RoPE)
  MatD q;            // [nh·d, nh·d] of q, or empty
  double tokens = 0;
};

struct MlaOptions {
  int64_t kv_lora_rank = 0;
  int64_t q_lora_rank = 0;         // 0: q_proj
  double query_scale = 1.0;        // GQA softmax scale / MLA softmax scale
  double balance_kv_ratio = 1.0;   // TransMLA's --balance-kv-ratio
  bool weighted_pca = true;        // weight the joint PCA by query and output-projection covariances when the
                                   // query covariance and W_O are available; false: TransMLA's plain BKV-PCA
  // Latent RMSNorms (kv_a_layernorm, q_a_layernorm; eps 1e-6 in the format): false = gain E[rms] (each token's
  // latent divided by its own RMS, near identity on average); true = linear: the latent rows of the down
  // projection are scaled by s so small that a token's mean square is ~1e-6·eps on average (kLinearNormLoad), and
  // the gain is sqrt(eps)/s, so the norm multiplies by 1/sqrt(1 + s²·ms/eps) ≈ 1 − 5e-7 and the factorisation
  // stays linear inside the official format (bf16/fp32 engines: the scaled latent is far above the smallest
  // normal number; an fp16 engine would underflow it).
  bool linear_latent_norm = false;
};

// Mean square of an eps 1e-6 RMSNorm's input relative to eps in the linear latent-norm form (MlaOptions).
inline constexpr double kLinearNormLoad = 1e-6;
inline constexpr double kLatentNormEps = 1e-6;

struct MlaLayer {
  MatD q_proj;                     // [nh·(d + rd), H] (no q LoRA)
  MatD q_a, q_b;                   // [r_q, H], [nh·(d + rd), r_q]
  MatD kv_a;                       // [r_kv + rd, H]: latent rows, then k_pe rows
  MatD kv_b;                       // [nh·2d, r_kv]: per head W_UK_h (d rows) then W_UV_h (d rows)
  std::vector<double> q_proj_bias, q_a_bias, kv_a_bias;  // empty without bias
  std::vector<double> q_a_norm, kv_a_norm;               // latent RMSNorm weights
  // Report (energies are fractions of calibration eigen-mass; errors relative mean squared errors).
  double rope_energy = 0;          // kept by the rd k_pe components among all rotated key dims
  double latent_energy = 0;        // kept by the latent among the balanced pool + V
  double k_rel_err = 0, v_rel_err = 0;  // reconstruction of the K-NoPE pool and of V from the latent
  double balance_ratio = 1;
  double q_energy = 1;             // kept by the q LoRA (1 without it)
  bool weighted_pca = false;       // the weighted PCA was used
};

// Largest kv_lora_rank a layer can use: 2·nkv·d − rd (the k_pe takes rd of the GQA cache).
int64_t max_kv_lora_rank(int64_t nkv, int64_t d, int64_t rd);

MlaLayer gqa_to_mla(const GqaLayer& in, const KvCovariance& cov, const MlaOptions& opt);

// GQA qkv [(nh + 2·nkv)·d, H] → Lightning MHA qkv [3·nh·d, H]: every query head gets a copy of its group's K
// and V rows (an exact projection of the GQA attention inputs). Bias likewise when non-empty.
void expand_qkv_to_mha(const float* qkv, int64_t H, int64_t nh, int64_t nkv, int64_t d, float* out);

}  // namespace ling::convert
