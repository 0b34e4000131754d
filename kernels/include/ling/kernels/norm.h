// RMSNorm, GroupRMSNorm, the residual add fused with the next norm, and the Lightning output gate
// (architecture.md §2.2, §2.6 steps 9–10). Params are core/op_params.h's, the ones ref::rms_norm,
// ref::add_rms_norm and ref::group_norm_gate take; pointers are device pointers. fp32, fp64 sums of squares,
// the reference's operation order: outputs equal the reference's up to the order of the fp64 sum. Also the forms
// other kernels run inside themselves: the add + norm as the tail of the kernel that writes d (AddNormTail) or as
// the head of the kernel that reads y (AddNormHead), and the output gate as such a head (GateHead).
#pragma once
#include <cuda_runtime_api.h>

#include "ling/core/op_params.h"

namespace ling::kernels {

// y = RMSNorm(x) · w per group; in place allowed (x == y, same strides).
void launch_rms_norm(const RmsNormParams& p, cudaStream_t stream);
// h += d (d null: no add), y = RMSNorm(h) · w; rows packed. The row stays in registers when dim % 4 == 0,
// dim ≤ 16384 and the buffers are 16-byte aligned (one 1024-thread CTA per row), else a strided loop.
void launch_add_rms_norm(const AddRmsNormParams& p, cudaStream_t stream);
// The residual add + RMSNorm of one row, run inside another kernel by its last CTA once every CTA has written
// its part of d (launch_gemv and launch_moe_down_combine take one: a batch-1 decode step saves the norm's
// launch). norm: h, w, y, dim, eps of launch_add_rms_norm with rows 1 (d is the host kernel's output; dim % 4 == 0,
// h, y, w 16-byte aligned). counter: a device word, 0 before the launch; the last CTA sets it back to 0.
struct AddNormTail {
  AddRmsNormParams norm;
  unsigned* counter = nullptr;  // null: no tail
};
void check_add_norm_tail(const AddNormTail& t, const float* d, int64_t dim, const char* who);
// The residual add + RMSNorm of one row as the prologue of the kernel that consumes its output (the one-row GEMV
// and the one-token MoE router take one): every CTA forms y = RMSNorm(h_in + d) · w in its own shared memory after
// its programmatic-launch wait (launch_add_rms_norm's arithmetic; the fp64 sum over 256 threads) and runs on that
// instead of x; CTA 0 also writes y and h_out = h_in + d. A decode step saves the norm's launch and its round trip.
// h_out must not be h_in (other CTAs may still be reading it): the caller alternates the residual between two
// buffers. d null: y = RMSNorm(h_in) · w and no h_out. dim % 4 == 0, dim ≤ kAddNormHeadMaxDim; h_in, d, h_out, w, y
// 16-byte aligned.
constexpr int64_t kAddNormHeadMaxDim = 16384;
struct AddNormHead {
  const float* h_in = nullptr;  // null: no head
  const float* d = nullptr;
  const float* w = nullptr;     // [dim] norm weight
  float* h_out = nullptr;       // [dim] h_in + d (written by CTA 0; null when d is)
  float* y = nullptr;           // [dim] the normed row (written by CTA 0)
  int64_t dim = 0;
  double eps = 1e-6;
};
// Throws ling::Error (one line naming `who` and the field) unless t is empty or valid for a consumer of K-wide rows.
void check_add_norm_head(const AddNormHead& t, int64_t K, const char* who);
// Dynamic shared memory of a CTA running a head of dim values (the normed row and the norm weights).
inline size_t add_norm_head_smem(const AddNormHead& t) { return t.h_in ? size_t(t.dim) * 2 * sizeof(float) : 0; }
// o = GroupRMSNorm(o) · w ⊙ sigmoid(gate), in place.
void launch_group_norm_gate(const GroupNormGateParams& p, cudaStream_t stream);
// The Lightning output gate of one row as the prologue of the kernel that reads it (the one-row GEMV takes one):
// every CTA forms x = GroupRMSNorm(o) · w ⊙ sigmoid(gate) in its own shared memory after its programmatic-launch
// wait, with launch_group_norm_gate's arithmetic (its 256 threads' strided fp64 sums per group, block_sum_d's
// order, the same products: the same values bit for bit), and runs on it; o is left as it is. A batch-1 Lightning
// step then needs no gate in the recurrence kernel (no counter, fence or read-back of o). width % 4 == 0,
// width ≤ kGateHeadMaxWidth, groups ≤ kGateHeadMaxGroups dividing width; o, w, gate 16-byte aligned.
constexpr int64_t kGateHeadMaxWidth = 4096, kGateHeadMaxGroups = 16;
struct GateHead {
  const float* o = nullptr;     // [width]; null: no head
  const float* w = nullptr;     // [width] the group norm's weight
  const float* gate = nullptr;  // [width] the gate row
  int64_t width = 0, groups = 1;
  double eps = 1e-6;
};
// Throws ling::Error (one line naming `who` and the field) unless t is empty or valid for a consumer of K-wide rows.
void check_gate_head(const GateHead& t, int64_t K, const char* who);
// Dynamic shared memory of a CTA running a gate head (o, the weights, the gate).
inline size_t gate_head_smem(const GateHead& t) { return t.o ? size_t(t.width) * 3 * sizeof(float) : 0; }

}  // namespace ling::kernels
