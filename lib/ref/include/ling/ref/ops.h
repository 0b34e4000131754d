// CPU reference ops in plain fp32 with fp64 reductions (architecture.md §2; house-style.md §3).
// Every op takes one params struct (pointers, strides, sizes, constants) that the CUDA kernels reuse, so that
// both sides are driven by the same description. Row-major everywhere; weights are [out, in] (y = x·Wᵀ).
// Limits: no dtype other than f32 (the engine converts weights once at load); no aliasing unless stated.
#pragma once
#include <cstdint>
#include <vector>

#include "ling/core/op_params.h"

namespace ling::ref {

// The ops shared with the kernels take their params from core/op_params.h.
using ling::AddRmsNormParams;
using ling::EmbedParams;
using ling::GroupNormGateParams;
using ling::QkNormRopeParams;
using ling::RmsNormParams;
using ling::RopeParams;
using ling::SwigluParams;

// y[M, N] = x[M, K] · W[N, K]ᵀ (+ bias[N]) through OpenBLAS sgemm (fp32 accumulation inside BLAS).
struct LinearParams {
  const float* x = nullptr;     // [M, K], row stride ldx (0 = K)
  const float* w = nullptr;     // [N, K]
  const float* bias = nullptr;  // [N] or null
  float* y = nullptr;           // [M, N], row stride ldy (0 = N)
  int64_t M = 0, N = 0, K = 0;
  int64_t ldx = 0, ldy = 0;
  bool accumulate = false;      // y += x·Wᵀ instead of y =
};
void linear(const LinearParams& p);


// RMSNorm / GroupRMSNorm (core/op_params.h).
void rms_norm(const RmsNormParams& p);
// h += d, y = RMSNorm(h) · w.
void add_rms_norm(const AddRmsNormParams& p);

// RoPE frequencies (§2.5 step 3, §2.8). Default: inv_freq_i = θ^(−2i/rope_dim); YaRN blends interpolated and
// extrapolated frequencies and sets attention_factor (the cos/sin multiplier). mla_mscale2 is the extra MLA
// softmax factor mscale² (1 without YaRN / without mscale_all_dim).
struct RopeFreqParams {
  int64_t rope_dim = 64;
  double theta = 600000.0;
  bool yarn = false;
  double factor = 1.0;
  int64_t original_max_position_embeddings = 4096;
  double beta_fast = 32.0, beta_slow = 1.0;
  double mscale = 0.0, mscale_all_dim = 0.0;  // 0 = absent
  double attention_factor = 0.0;              // 0 = absent (derived)
};
struct RopeFreqs {
  std::vector<float> inv_freq;    // [rope_dim/2]
  float attention_factor = 1.0f;  // multiplies cos and sin
  double mla_mscale2 = 1.0;       // multiplies the MLA softmax scale
};
RopeFreqs rope_freqs(const RopeFreqParams& p);


// RoPE in place (core/op_params.h: NeoX or interleaved).
void rope(const RopeParams& p);
// Per-head QK-norm then RoPE: rms_norm on each head, then rope (core/op_params.h).
void qk_norm_rope(const QkNormRopeParams& p);
// Lightning output gate: rms_norm with groups, then · sigmoid(gate).
void group_norm_gate(const GroupNormGateParams& p);
// Embedding row lookup.
void embed(const EmbedParams& p);

// Causal softmax attention with grouped KV heads (§2.5 step 4; MLA prefill uses it with dk != dv and
// nkv = nh). Query i (absolute position qpos[i]) sees keys j with j ≤ qpos[i] among the S keys at positions
// 0..S−1. Softmax in fp32 with fp64 sums. KV head g serves query heads g·G .. g·G+G−1 (G = nh/nkv).
struct AttentionParams {
  const float* q = nullptr;  // [T, nh, dk], row stride ldq (0 = nh·dk)
  const float* k = nullptr;  // [S, nkv, dk], row stride ldk (0 = nkv·dk)
  const float* v = nullptr;  // [S, nkv, dv], row stride ldv (0 = nkv·dv)
  float* o = nullptr;        // [T, nh, dv], row stride ldo (0 = nh·dv)
  const int64_t* qpos = nullptr;  // [T]
  int64_t T = 0, S = 0, nh = 0, nkv = 0, dk = 0, dv = 0;
  int64_t ldq = 0, ldk = 0, ldv = 0, ldo = 0;
  float scale = 1.0f;
};
void attention(const AttentionParams& p);
// The same attention with the dot products in fp32 sgemm (scores Q·Kᵀ and P·V per head, query tiles of 256
// rows, softmax in fp32 with fp64 sums): the fast path for prefill, checked against attention().
void attention_gemm(const AttentionParams& p);

// Lightning attention (§2.6 steps 7–8) for one sequence. State S [nh, dk, dv] fp32 is read and updated in place.
// Per head h with log decay g[h]: S_t = e^{g} S_{t−1} + k_tᵀ v_t; o_t = (scale·q_t) S_t.
struct LightningParams {
  const float* q = nullptr;  // [T, nh, d], row stride ldq (0 = nh·d)
  const float* k = nullptr;  // [T, nh, d], row stride ldk
  const float* v = nullptr;  // [T, nh, d], row stride ldv
  float* o = nullptr;        // [T, nh, d], row stride ldo
  float* state = nullptr;    // [nh, d, d]
  const float* g = nullptr;  // [nh] log decay (negative)
  int64_t T = 0, nh = 0, d = 0;
  int64_t ldq = 0, ldk = 0, ldv = 0, ldo = 0;
  float scale = 1.0f;
  int64_t chunk = 64;        // chunk size of the chunked form
  // Chunked form only: round what a bf16-operand tensor-core kernel rounds — the decayed scores
  // (q_i·k_j)·e^{g(i−j)}, the decayed values e^{g(n−1−j)}·v_j of the state update and the state entering q·S —
  // to bf16 (the
  // low-precision reference of kernels::LightningPrefillParams::exact = false).
  bool bf16_operands = false;
};
void lightning_recurrent(const LightningParams& p);  // token-by-token loop
void lightning_chunked(const LightningParams& p);    // chunked form, equal to the loop up to fp32 rounding

// Lightning slopes (ALiBi rule) and log decays g_h = −slope_h · f (§2.6 steps 5–6).
std::vector<float> lightning_log_decay(const std::vector<double>& slopes, double decay_factor);

// Absorbed MLA decode (§2.7 step 7) for T query tokens of one sequence over a latent cache of S tokens
// [c(r) ‖ k_pe(dr)]; query i sees cache rows j ≤ qpos[i]. kv_b = kv_b_proj weight [nh·(dn+dv), r].
//   q̃_h = W_UK_hᵀ q_nope_h; s_h(t) = (q̃_h·c_t + q_pe_h·k_pe_t)·scale; u_h = Σ p_t c_t; o_h = W_UV_h u_h.
struct MlaDecodeParams {
  const float* q = nullptr;      // [T, nh, dn + dr] (q_pe after RoPE), row stride ldq (0 = nh·(dn+dr))
  const float* cache = nullptr;  // [S, r + dr]
  const float* kv_b = nullptr;   // [nh·(dn + dv), r]
  float* o = nullptr;            // [T, nh, dv]
  const int64_t* qpos = nullptr;
  int64_t T = 0, S = 0, nh = 0, dn = 0, dr = 0, dv = 0, r = 0, ldq = 0;
  float scale = 1.0f;
};
void mla_decode_absorbed(const MlaDecodeParams& p);

// MoE router (§2.4) for `rows` tokens: fp32 logits (given), sigmoid, + bias for selection, group top-2 sums,
// topk_group groups kept, top-k (ties → lower index), weights from unbiased scores renormalised (+1e-20 when
// k > 1) × routed_scaling_factor. Ids come out in descending selection-score order.
struct MoeRouteParams {
  const float* logits = nullptr;  // [rows, E]
  const float* bias = nullptr;    // [E] or null
  int32_t* topk_ids = nullptr;    // [rows, k]
  float* topk_weights = nullptr;  // [rows, k]
  int64_t rows = 0, E = 0, k = 0, n_group = 1, topk_group = 1;
  double routed_scaling_factor = 1.0;
};
void moe_route(const MoeRouteParams& p);


// SwiGLU on a fused gate‖up buffer (core/op_params.h).
void swiglu(const SwigluParams& p);

// Sampling from one row of logits. temperature 0 → greedy (argmax, lowest index on ties). Otherwise softmax of
// logits/temperature restricted to the top_k best (0 = all) and to the smallest prefix with mass ≥ top_p,
// drawn with `rng_state` (splitmix64, advanced in place) so a seed reproduces the sequence.
struct SamplingParams {
  const float* logits = nullptr;
  int64_t vocab = 0;
  float temperature = 0.0f;
  int64_t top_k = 0;
  float top_p = 1.0f;
};
int64_t sample(const SamplingParams& p, uint64_t* rng_state);
// sample() split in two, for samplers elsewhere (the CUDA backend) that must follow the same stream: the draw a
// call consumes (splitmix64 advanced once at temperature > 0, else nothing and 0), and the pick for a draw.
// sample(p, rng) == sample_with_draw(p, sample_draw(p, rng)).
uint64_t splitmix64(uint64_t* rng_state);
uint64_t sample_draw(const SamplingParams& p, uint64_t* rng_state);
int64_t sample_with_draw(const SamplingParams& p, uint64_t draw);
int64_t argmax(const float* x, int64_t n);

}  // namespace ling::ref
