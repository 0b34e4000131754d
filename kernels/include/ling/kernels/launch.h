// Programmatic dependent launch of the decode-path kernels (GEMV, norms, RoPE, SwiGLU, embedding, Lightning
// decode, MoE routing and experts): process-wide, off by default here; the CUDA backend turns it on (unless
// LING_CUDA_PDL=0). Each such kernel waits for its predecessor's results inside the kernel (common/launch.cuh), so
// results are the same either way; only the gaps between kernels change.
#pragma once

namespace ling::kernels {

void set_programmatic_launch(bool on);
bool programmatic_launch();

// The current device's SM count (grids sized to the machine: persistent kernels, split-KV plans).
int device_sm_count();
// How many CTAs of `threads` threads (no dynamic shared memory) of kernel can be resident on the current device at
// once (occupancy per SM × SMs), computed once per device and kernel.
long resident_ctas(const void* kernel, int threads);

}  // namespace ling::kernels
