// Lightning attention kernels (architecture.md §2.6 steps 7–8) for head dim 128 on sm_90a.
// Prefill: bf16 q/k/v [T, nh, 128] of one sequence, fp32 state [nh, 128, 128] read and updated in place,
// output bf16 or fp32. The sequence is split into blocks so that even 8 heads fill the GPU: pass 1 computes
// each block's local decayed KᵀV state, pass 2 scans the states across blocks, pass 3 produces the outputs
// chunk by chunk (64 tokens) on tensor cores. Decode: B sequences, one token each, fp32 state
// [B, nh, 128, 128] updated in place. Math as in ling::ref::lightning_recurrent:
//   S_t = e^{g_h} S_{t−1} + k_tᵀ v_t;  o_t = (scale · q_t) S_t.
// The tests convert each params struct to ling::ref::LightningParams (tests/kernels/lightning_params.h).
#pragma once
#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

namespace ling::kernels {

struct LightningPrefillParams {
  const uint16_t* q = nullptr;  // bf16 [T, nh, 128], row stride ldq elements (0 = nh·128)
  const uint16_t* k = nullptr;  // bf16 [T, nh, 128], row stride ldk
  const uint16_t* v = nullptr;  // bf16 [T, nh, 128], row stride ldv
  void* o = nullptr;            // [T, nh, 128] bf16 or fp32 (o_fp32), row stride ldo
  float* state = nullptr;       // fp32 [nh, 128 (dk), 128 (dv)], in: state before token 0, out: after T−1
  const float* g = nullptr;     // fp32 [nh] log decay per head (negative), device memory
  void* workspace = nullptr;    // lightning_prefill_workspace_bytes(...) bytes of device memory (may be null if 0)
  int64_t T = 0, nh = 0;
  int64_t ldq = 0, ldk = 0, ldv = 0, ldo = 0;  // multiples of 8 elements; pointers 16-byte aligned
  float scale = 1.0f;
  bool o_fp32 = false;          // output dtype: fp32 when true, bf16 otherwise
  int64_t blocks = 0;           // sequence blocks per head (0 = chosen from T, nh and the SM count)
  // true: fp32-accurate outputs and state (every fp32 MMA operand split into bf16 hi + lo). false: bf16 MMA
  // operands with fp32 accumulation (outputs and state to bf16 accuracy), 2.25× fewer tensor-core operations.
  bool exact = true;
};

constexpr int64_t kLightningHeadDim = 128;
constexpr int64_t kLightningChunk = 64;

// Blocks per head that launch_lightning_prefill uses for this shape on a device with `num_sms` SMs (pure).
int64_t lightning_prefill_blocks(int64_t T, int64_t nh, int64_t requested_blocks, int num_sms);
// Workspace for one call: nh · blocks · 128 · 128 fp32 when blocks > 1, else 0.
size_t lightning_prefill_workspace_bytes(int64_t T, int64_t nh, int64_t requested_blocks, int num_sms);
void launch_lightning_prefill(const LightningPrefillParams& p, cudaStream_t stream);

struct LightningDecodeParams {
  const float* q = nullptr;  // fp32 [B, nh, 128] (row stride ldq per sequence, 0 = nh·128)
  const float* k = nullptr;  // fp32 [B, nh, 128]
  const float* v = nullptr;  // fp32 [B, nh, 128]
  float* o = nullptr;        // fp32 [B, nh, 128]
  float* state = nullptr;    // fp32 [B, nh, 128 (dk), 128 (dv)], updated in place
  const float* g = nullptr;  // fp32 [nh] log decay, device memory
  int64_t B = 0, nh = 0;
  int64_t ldq = 0, ldk = 0, ldv = 0, ldo = 0;
  float scale = 1.0f;
  // Decode-step folds (each off when its pointer is null), bit for bit the separate kernels' results:
  // - qk: q and k of each head through launch_qk_norm_rope's math first (RMSNorm with q_norm / k_norm, either may
  //   be null, then partial RoPE at pos[b] with inv_freq over rope_dim dims); the q/k buffers are not written.
  const int64_t* pos = nullptr;       // [B] positions (with inv_freq)
  const float* inv_freq = nullptr;    // [rope_dim / 2] or null: no RoPE
  const float* q_norm = nullptr;      // [128] or null
  const float* k_norm = nullptr;      // [128] or null
  int64_t rope_dim = 0;
  double qk_eps = 1e-6;
  float rope_factor = 1.0f;
  bool rope_interleaved = false;
  // - gate: o = GroupRMSNorm(o) · gate_w ⊙ sigmoid(gate) over `groups` groups of nh / groups heads (launch_group_
  //   norm_gate's math), done by the last CTA of each (sequence, group) to finish; counters: B · groups unsigned
  //   of device memory, zero before, left zero (launches on one array must not overlap: one stream).
  const float* gate_w = nullptr;      // [nh·128] or null
  const float* gate = nullptr;        // [B, nh·128] at row stride ld_gate (0 = nh·128)
  int64_t groups = 1, ld_gate = 0;
  double gate_eps = 1e-6;
  unsigned* counters = nullptr;
  // Groups of at most kLightningFoldClusterMax heads: the group's CTAs run as a thread-block cluster and each
  // gates its own head after adding the heads' sums of squares through distributed shared memory (counters
  // unused; may be null). false: the last-CTA form for every group size.
  bool cluster = false;
  // The cluster form only: store each state row as it is updated (as the other forms do) instead of after o is out.
  bool state_early = false;
  // Programmatic launch: let the next kernel in only after the state update (every load after the wait has
  // returned), instead of at the start — so that its early loads do not queue ahead of this one's q, k, v and gate
  // reads. Scheduling only: the same results.
  bool late_trigger = false;
};
constexpr int64_t kLightningFoldClusterMax = 8;
void launch_lightning_decode(const LightningDecodeParams& p, cudaStream_t stream);

}  // namespace ling::kernels
