// L2 prefetch kernel (ling/kernels/prefetch.h): each thread issues bulk prefetches of kL2PrefetchPiece-byte
// pieces, striding over the direct ranges and then the table ranges.
#include "common/check.h"
#include "ling/kernels/prefetch.h"

namespace ling::kernels {
namespace {

__device__ __forceinline__ void prefetch_l2(const void* p, uint32_t bytes) {
  asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(p), "r"(bytes) : "memory");
}

// Pieces [0, pieces(bytes)) of one range, strided over the grid's threads.
__device__ __forceinline__ void prefetch_range(const char* p, size_t bytes, size_t tid, size_t threads) {
  bytes &= ~size_t(15);
  const size_t pieces = (bytes + kL2PrefetchPiece - 1) / kL2PrefetchPiece;
  for (size_t i = tid; i < pieces; i += threads) {
    const size_t off = i * kL2PrefetchPiece;
    const size_t len = bytes - off < kL2PrefetchPiece ? bytes - off : kL2PrefetchPiece;
    prefetch_l2(p + off, uint32_t(len));
  }
}

__global__ void l2_prefetch_kernel(L2PrefetchParams p) {
  const size_t threads = size_t(gridDim.x) * blockDim.x, tid = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  for (int r = 0; r < p.n; ++r) prefetch_range(static_cast<const char*>(p.ptr[r]), p.bytes[r], tid, threads);
  for (int i = 0; i < p.n_ids; ++i) {
    const int32_t id = p.ids[i];
    if (id < 0 || id >= p.table_len || !p.table[id]) continue;
    prefetch_range(static_cast<const char*>(p.table[id]), p.table_bytes, tid, threads);
  }
}

}  // namespace

void launch_l2_prefetch(const L2PrefetchParams& p, cudaStream_t stream) {
  const bool indirect = p.table && p.ids && p.n_ids > 0 && p.table_bytes >= 16;
  if (p.n == 0 && !indirect) return;
  L2PrefetchParams q = p;
  if (!indirect) q.n_ids = 0;
  // Four CTAs of a warp: a few SMs' bulk-copy units issue the requests; the rest of the GPU keeps running the
  // main stream's kernels.
  l2_prefetch_kernel<<<4, 32, 0, stream>>>(q);
  LING_CUDA_CHECK(cudaGetLastError());
}

}  // namespace ling::kernels
