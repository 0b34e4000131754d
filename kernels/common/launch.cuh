// Kernel launches of the decode path with programmatic dependent launch (PDL, sm_90): with the attribute, a kernel
// may be scheduled while the previous kernel in the stream is still running; its CTAs call pdl_wait() before
// touching anything an earlier kernel wrote or reads (griddepcontrol.wait returns once the previous grid has
// completed and its memory is visible; without the attribute it returns at once), and pdl_trigger() lets the next
// kernel be scheduled as soon as every CTA of this one is running (pdl_enter: both, trigger first). Only constant data (weights) may be read before
// pdl_wait(). Whether launches carry the attribute is process-wide (set_programmatic_launch, launch.h).
#pragma once
#include <cuda_runtime.h>

#include <utility>

#include "common/check.h"
#include "ling/kernels/launch.h"

namespace ling::kernels {

__device__ __forceinline__ void pdl_wait() { asm volatile("griddepcontrol.wait;\n" ::: "memory"); }
__device__ __forceinline__ void pdl_trigger() { asm volatile("griddepcontrol.launch_dependents;\n" ::: "memory"); }
// Trigger, then wait: the next kernel may be scheduled before this one has waited, so that chains of short
// kernels get their constant loads (weights, states) in flight while the kernels ahead still run. Still ordered:
// each kernel completes only after its own wait returned, so a wait that sees the previous kernel complete also
// sees every kernel before it complete. Not for a kernel whose successor reads, before its own wait, data that a
// kernel ahead of this one writes (MoeDownParams::ids_ready after the gate_up kernel): that one waits first.
__device__ __forceinline__ void pdl_enter() {
  asm volatile("griddepcontrol.launch_dependents;\ngriddepcontrol.wait;\n" ::: "memory");
}

// cudaFuncSetAttribute(kernel, MaxDynamicSharedMemorySize, bytes) only when it raises the size set so far for this
// device and kernel (a larger limit serves every smaller launch), so repeated launches, and those inside a
// captured decode-step graph, make no attribute calls.
void set_max_dynamic_smem(const void* kernel, int bytes);
template <typename... KArgs>
void set_max_dynamic_smem(void (*kernel)(KArgs...), int bytes) {
  set_max_dynamic_smem(reinterpret_cast<const void*>(kernel), bytes);
}

// kernel<<<grid, block, smem, stream>>>(args...), with the PDL attribute when programmatic_launch() is on.
template <typename... KArgs, typename... Args>
void launch_pdl(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream, Args&&... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid, cfg.blockDim = block, cfg.dynamicSmemBytes = smem, cfg.stream = stream;
  cudaLaunchAttribute attr[1];
  attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
  attr[0].val.programmaticStreamSerializationAllowed = 1;
  cfg.attrs = attr, cfg.numAttrs = programmatic_launch() ? 1 : 0;
  LING_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...));
}

}  // namespace ling::kernels
