// Params of the element-wise, norm and RoPE ops, shared by the CPU reference (lib/ref, host pointers) and the
// CUDA kernels (kernels/, device pointers): one description per op, so a size, stride or eps cannot differ
// between the oracle and the kernel (house-style.md §3). Plain C++; fp32 buffers; row-major; a stride of 0 means
// "packed" (the row width).
#pragma once
#include <cstdint>

namespace ling {

// RMSNorm (architecture.md §2.2) over `rows` vectors of `dim` values, split into `groups` contiguous groups each
// normalised on its own (GroupRMSNorm, §2.6 step 9; groups = 1 is the plain RMSNorm). HF order: normalise in
// fp32 (sum of squares in fp64), cast to the model dtype (f32 here), multiply by weight. In-place allowed.
struct RmsNormParams {
  const float* x = nullptr;  // [rows, dim] with row stride ldx (0 = dim)
  const float* w = nullptr;  // [dim]
  float* y = nullptr;        // [rows, dim] with row stride ldy (0 = dim)
  int64_t rows = 0, dim = 0, groups = 1;
  int64_t ldx = 0, ldy = 0;
  double eps = 1e-6;
};

// Residual add fused with the next RMSNorm: h += d (d null: no add), then y = RMSNorm(h) · w. h, d, y packed
// [rows, dim]; y may alias neither h nor d.
struct AddRmsNormParams {
  float* h = nullptr;
  const float* d = nullptr;
  const float* w = nullptr;  // [dim]
  float* y = nullptr;
  int64_t rows = 0, dim = 0;
  double eps = 1e-6;
};

// Apply RoPE in place to `rows` tokens × `heads` heads. Angle = f32(pos) · inv_freq (f32 product, as HF), cos
// and sin times attention_factor. neox: pairs (i, i + rd/2) on the first rd dims (rest pass through).
// interleaved (MLA): pairs (2i, 2i+1) on the first rd dims, written de-interleaved like HF (out[i], out[i+rd/2]),
// the same permutation for q and k so scores are unchanged.
struct RopeParams {
  float* x = nullptr;               // token t, head h starts at x + t·row_stride + h·head_stride
  const int64_t* pos = nullptr;     // [rows] absolute positions
  const float* inv_freq = nullptr;  // [rd/2]
  int64_t rows = 0, heads = 1, row_stride = 0, head_stride = 0, rope_dim = 0;
  float attention_factor = 1.0f;
  bool interleaved = false;
};

// Per-head QK-norm then partial RoPE, in place, on packed q/k heads (§2.5 steps 2–3): each row of x holds nq query
// heads then nk key heads of hd values (row stride ld, 0 = (nq + nk)·hd); a query head is RMS-normalised with wq,
// a key head with wk (both null: no norm, RoPE only), then RoPE (RopeParams' rule) on its first rope_dim values
// at position pos[row].
struct QkNormRopeParams {
  float* x = nullptr;
  const int64_t* pos = nullptr;     // [rows]
  const float* inv_freq = nullptr;  // [rope_dim/2]
  const float* wq = nullptr;        // [hd] or null
  const float* wk = nullptr;        // [hd] or null
  int64_t rows = 0, nq = 0, nk = 0, hd = 0, ld = 0, rope_dim = 0;
  double eps = 1e-6;
  float attention_factor = 1.0f;
  bool interleaved = false;
};

// The Lightning output gate (§2.6 steps 9–10): o = GroupRMSNorm(o) · w ⊙ sigmoid(gate), in place, over rows ×
// width values in `groups` contiguous groups; o and gate packed [rows, width].
struct GroupNormGateParams {
  float* o = nullptr;
  const float* w = nullptr;     // [width]
  const float* gate = nullptr;  // [rows, width] at row stride ld_gate
  int64_t rows = 0, width = 0, groups = 1;
  int64_t ld_gate = 0;          // 0 = width (e.g. width + 3·width when the gate follows q‖k‖v in one row)
  double eps = 1e-6;
};

// SwiGLU activation on a fused [rows, 2·I] gate‖up buffer: out[r, i] = silu(gate) · up. out may alias gu on the
// host; the kernel needs distinct buffers.
struct SwigluParams {
  const float* gu = nullptr;  // [rows, 2I]: gate in [0, I), up in [I, 2I)
  float* out = nullptr;       // [rows, I] with row stride ldo (0 = I)
  int64_t rows = 0, I = 0, ldo = 0;
};

// Embedding lookup: out[i, :] = table[ids[i], :] for n tokens of width H (ids checked by the caller).
struct EmbedParams {
  const int32_t* ids = nullptr;  // [n]
  const float* table = nullptr;  // [vocab, H]
  float* out = nullptr;          // [n, H]
  int64_t n = 0, H = 0;
};

}  // namespace ling
