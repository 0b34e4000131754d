// Programmatic dependent launch (PDL, sm_90) for any CUDA source of the project (kernels/ and the CUDA backend's own
// kernels): the device side of common/launch.cuh's contract — pdl_wait() before touching anything an earlier kernel
// wrote, pdl_trigger() to let the next kernel be scheduled, pdl_enter() both, trigger first — and a launch that
// carries the attribute when programmatic_launch() is on (launch.h), returning the launch's error.
#pragma once
#include <cuda_runtime.h>

#include <utility>

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

// pdl_enter(), or with late_trigger only the wait: the caller then calls pdl_trigger() itself, once its dependent
// reads are back, so that the next kernel's early loads do not queue ahead of them.
__device__ __forceinline__ void pdl_enter_or_wait(bool late_trigger) {
  if (late_trigger) pdl_wait();
  else pdl_enter();
}

// kernel<<<grid, block, smem, stream>>>(args...) with the PDL attribute when programmatic_launch() is on, and with
// thread-block clusters of cluster_x CTAs along x when cluster_x > 0 (grid.x a multiple of it).
template <typename... KArgs, typename... Args>
cudaError_t launch_pdl_cluster_unchecked(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem,
                                         cudaStream_t stream, unsigned cluster_x, Args&&... args) {
  cudaLaunchConfig_t cfg = {};
  cfg.gridDim = grid, cfg.blockDim = block, cfg.dynamicSmemBytes = smem, cfg.stream = stream;
  cudaLaunchAttribute attr[2];
  unsigned n = 0;
  if (programmatic_launch()) {
    attr[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[n++].val.programmaticStreamSerializationAllowed = 1;
  }
  if (cluster_x > 0) {
    attr[n].id = cudaLaunchAttributeClusterDimension;
    attr[n].val.clusterDim.x = cluster_x, attr[n].val.clusterDim.y = 1, attr[n++].val.clusterDim.z = 1;
  }
  cfg.attrs = attr, cfg.numAttrs = n;
  return cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...);
}

template <typename... KArgs, typename... Args>
cudaError_t launch_pdl_unchecked(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                                 Args&&... args) {
  return launch_pdl_cluster_unchecked(kernel, grid, block, smem, stream, 0u, std::forward<Args>(args)...);
}

}  // namespace ling::kernels
