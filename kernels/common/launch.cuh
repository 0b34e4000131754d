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
#include "ling/kernels/pdl.cuh"

namespace ling::kernels {

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
  LING_CUDA_CHECK(launch_pdl_unchecked(kernel, grid, block, smem, stream, std::forward<Args>(args)...));
}

// launch_pdl with thread-block clusters of cluster_x CTAs along x.
template <typename... KArgs, typename... Args>
void launch_pdl_cluster(void (*kernel)(KArgs...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream,
                        unsigned cluster_x, Args&&... args) {
  LING_CUDA_CHECK(
      launch_pdl_cluster_unchecked(kernel, grid, block, smem, stream, cluster_x, std::forward<Args>(args)...));
}

}  // namespace ling::kernels
