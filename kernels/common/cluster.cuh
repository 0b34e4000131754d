// Thread-block cluster primitives (sm_90): the split cluster barrier and loads from another CTA's shared memory
// (distributed shared memory). Every thread of every CTA of the cluster must take part in each barrier phase
// (.aligned: whole warps), and a CTA must not exit while another may still read its shared memory.
#pragma once
#include <cstdint>

namespace ling::kernels {

// Arrive at the cluster barrier: this thread's earlier writes (shared and global) are released to the cluster.
__device__ __forceinline__ void cluster_arrive_release() {
  asm volatile("barrier.cluster.arrive.release.aligned;\n" ::: "memory");
}
// Wait until every thread of the cluster has arrived (acquiring what they released).
__device__ __forceinline__ void cluster_wait_acquire() {
  asm volatile("barrier.cluster.wait.acquire.aligned;\n" ::: "memory");
}
// The double at `p` (an address in this CTA's shared memory) in the shared memory of cluster rank `rank`.
__device__ __forceinline__ double ld_dsmem_f64(const double* p, unsigned rank) {
  const uint32_t local = static_cast<uint32_t>(__cvta_generic_to_shared(p));
  uint32_t remote;
  asm volatile("mapa.shared::cluster.u32 %0, %1, %2;\n" : "=r"(remote) : "r"(local), "r"(rank));
  double v;
  asm volatile("ld.shared::cluster.f64 %0, [%1];\n" : "=d"(v) : "r"(remote) : "memory");
  return v;
}

}  // namespace ling::kernels
