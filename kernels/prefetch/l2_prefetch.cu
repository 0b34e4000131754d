// L2 prefetch kernel (ling/kernels/prefetch.h): each thread issues bulk prefetches of kL2PrefetchPiece-byte
// pieces, striding over the direct ranges and then the table ranges.
#include "common/check.h"
#include "common/mbarrier.cuh"
#include "ling/kernels/prefetch.h"

namespace ling::kernels {
namespace {

__global__ void l2_prefetch_kernel(L2PrefetchParams p) {
  const size_t threads = size_t(gridDim.x) * blockDim.x, tid = size_t(blockIdx.x) * blockDim.x + threadIdx.x;
  for (int r = 0; r < p.n; ++r) bulk_prefetch_l2_pieces(p.ptr[r], p.bytes[r], kL2PrefetchPiece, tid, threads);
  for (int i = 0; i < p.n_ids; ++i) {
    const int32_t id = p.ids[i];
    if (id < 0 || id >= p.table_len || !p.table[id]) continue;
    bulk_prefetch_l2_pieces(p.table[id], p.table_bytes, kL2PrefetchPiece, tid, threads);
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
