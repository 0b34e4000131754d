// Absorbed MLA decode, split-KV pass 1 on Hopper warpgroup MMAs with bf16 softmax weights and TMA page loads
// (MlaDecodeParams::tma; page pool only). The schedule is the token-split kernel's (mla_decode_wgmma.cu: each
// warpgroup scores half of the page's tokens, the row maxima meet in shared memory, P is shared as a 64 × 64 bf16
// tile and each warpgroup accumulates its 256 latent columns), but the pages arrive by the tensor memory
// accelerator: the next page is requested as 9 boxes of 64 rows × 64 dims with SWIZZLE_128B (one per slab, issued
// by the lanes of warp 0) that complete on one mbarrier per page buffer, so no thread spends issue slots on copies.
// The boxes land in the 128-byte-swizzled slab layout of the cp.async kernels (mla_wgmma_tiles.cuh), read with the
// same descriptors. Rows past the sequence's end in its last page are zeroed in shared memory before use (pool
// rows there are not the sequence's).
#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_bf16.h>

#include <algorithm>
#include <cmath>
#include <mutex>

#include "common/check.h"
#include "common/launch.cuh"
#include "common/mbarrier.cuh"
#include "common/wgmma.cuh"
#include "ling/kernels/mla_decode.h"
#include "mla/mla_decode_impl.h"
#include "mla/mla_wgmma_tiles.cuh"

namespace ling::kernels {
namespace {

constexpr int kOffBuf = kTileBytes;                  // Q | page 0 | page 1 | P | maxima | mbarriers
constexpr int kOffP = kOffBuf + 2 * kTileBytes;
constexpr int kOffX = kOffP + kPBytes;
constexpr int kOffBar = kOffX + 2 * 64 * int(sizeof(float));
constexpr size_t kSmemTma = size_t(kOffBar) + 2 * sizeof(uint64_t);

// Box (x = first element of the row, y = first row) of the 2-D tensor map into shared memory, completing on bar.
__device__ __forceinline__ void tma_load_2d(void* dst, const CUtensorMap* map, int x, int y, uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3}], [%4];\n" ::"r"(
          smem_addr(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(x), "r"(y), "r"(smem_addr(bar))
      : "memory");
}

// Warp 0 requests page `page` (0-based within sequence b) into dst: lane 0 arms the barrier with the page's bytes,
// then the lanes issue the 9 slab boxes. `map`: the pool's (rows of page-table pages) or the sequence's own.
__device__ __forceinline__ void request_page(unsigned char* dst, const CUtensorMap* map, const MlaDecodeParams& p,
                                             int64_t b, int64_t page, uint64_t* bar, int lane) {
  const int y = int((p.seq_maps ? page : int64_t(p.page_table[b * p.max_pages + page])) * kPage);
  if (lane == 0) mbar_expect_tx(bar, unsigned(kTileBytes));
  __syncwarp();
  if (lane < kChunks / 8) tma_load_2d(dst + lane * kSlabBytes, map, 64 * lane, y, bar);
}

__global__ void __launch_bounds__(kThreads, 1) mla_split_tma_kernel(const MlaSplitArgs a,
                                                                    const __grid_constant__ CUtensorMap pool_map) {
  extern __shared__ __align__(1024) unsigned char smem[];
  unsigned char* sq = smem;
  unsigned char* const buf[2] = {smem + kOffBuf, smem + kOffBuf + kTileBytes};
  unsigned char* sp = smem + kOffP;
  float* sx = reinterpret_cast<float*>(smem + kOffX);  // [2 warpgroups][64 rows]: row maxima, at the end row sums
  uint64_t* bars = reinterpret_cast<uint64_t*>(smem + kOffBar);
  const MlaDecodeParams& p = a.p;
  const int tid = threadIdx.x, wg = tid >> 7, warp = tid >> 5, warp4 = warp & 3, lane = tid & 31, gi = lane >> 2,
            ti = lane & 3;
  const int r0 = 16 * warp4 + gi;  // this thread's rows r0 and r0 + 8
  const MlaCtaWork w = mla_cta_work(a, 64);
  const int64_t b = w.b, t_begin = w.t_begin, t_end = w.t_end;
  const int np = t_end > t_begin ? int((t_end - t_begin + kPage - 1) / kPage) : 0;
  const int64_t page0 = t_begin / kPage;
  // The pool's map (a kernel parameter) or the sequence's (device memory, written by the host before the launch:
  // acquired for the tensor proxy by each lane that issues copies with it).
  const CUtensorMap* map = p.seq_maps ? static_cast<const CUtensorMap*>(p.seq_maps) + b : &pool_map;
  if (p.seq_maps && warp == 0)
    asm volatile("fence.proxy.tensormap::generic.acquire.gpu [%0], 128;\n" ::"l"(reinterpret_cast<uint64_t>(map))
                 : "memory");

  if (tid == 0) {
    mbar_init(&bars[0], 1);
    mbar_init(&bars[1], 1);
    mbar_init_fence();
  }
  load_q(sq, p, b, w.h0, w.nh_here);  // the CTA's 64 query rows by cp.async
  cp_async_commit();
  __syncthreads();  // barriers initialised
  if (warp == 0 && np > 0) request_page(buf[0], map, p, b, page0, &bars[0], lane);
  cp_async_wait_all();
  fence_proxy_async_smem();
  __syncthreads();

  float acc[2][64];  // U rows (r0, r0 + 8), columns 256·wg + 128·hh + 8j + 2ti + {0, 1}
  zero_acc(acc);
  float m_run[2] = {-INFINITY, -INFINITY}, l_run[2] = {0.0f, 0.0f};  // l_run: this warpgroup's tokens
  const uint64_t dq = smem_desc(sq, 128, kGroup);
  for (int i = 0; i < np; ++i) {
    const int64_t t0 = t_begin + int64_t(i) * kPage;
    const int n = int(std::min<int64_t>(kPage, t_end - t0));
    unsigned char* c = buf[i & 1];
    // the next page into the other buffer (free: the previous page ended with a barrier)
    if (warp == 0 && i + 1 < np) request_page(buf[(i + 1) & 1], map, p, b, page0 + i + 1, &bars[(i + 1) & 1], lane);
    mbar_wait(&bars[i & 1], unsigned((i >> 1) & 1));
    if (n < kPage) {  // the sequence's last page: rows n.. are not its tokens
      for (int idx = tid; idx < (kPage - n) * kChunks; idx += kThreads) {
        const int r = n + idx / kChunks, ch = idx % kChunks;
        *reinterpret_cast<uint4*>(c + page_off(r, ch)) = make_uint4(0u, 0u, 0u, 0u);
      }
      fence_proxy_async_smem();
      __syncthreads();
    }
    split_page(c, n, dq, p.scale, wg, r0, ti, sx, sp, m_run, l_run, acc);
  }
  float l_both[2];  // row sums: the two warpgroups' parts (same running max)
  split_row_sums(l_run, wg, r0, ti, sx, l_both);
  store_partials(a, b, w.split, w.h0, w.nh_here, r0, wg, ti, acc, m_run, l_both);
}

// cuTensorMapEncodeTiled through the runtime's driver entry point (no link-time dependency on libcuda).
PFN_cuTensorMapEncodeTiled_v12000 encode_tiled() {
  static PFN_cuTensorMapEncodeTiled_v12000 fn = nullptr;
  static std::once_flag once;
  std::call_once(once, [] {
    void* f = nullptr;
    cudaDriverEntryPointQueryResult q{};
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &f, 12000, cudaEnableDefault, &q) == cudaSuccess &&
        q == cudaDriverEntryPointSuccess)
      fn = reinterpret_cast<PFN_cuTensorMapEncodeTiled_v12000>(f);
  });
  return fn;
}

// Rows [rows, rows + n_rows) of 576 bf16 as a 2-D map read in boxes of 64 rows × 64 values, 128-byte swizzled.
void encode_rows(CUtensorMap* map, const uint16_t* rows, int64_t n_rows, const char* what) {
  auto encode = encode_tiled();
  LING_CHECK(encode != nullptr, "mla decode (tma): cuTensorMapEncodeTiled is not available from the driver");
  LING_CHECK(reinterpret_cast<uintptr_t>(rows) % 16 == 0, "mla decode (tma): ", what, " not 16-byte aligned");
  LING_CHECK(n_rows >= 1 && n_rows < (int64_t(1) << 31), "mla decode (tma): ", what, " of ", n_rows,
             " rows outside the tensor map's range");
  const cuuint64_t dims[2] = {cuuint64_t(kMlaRow), cuuint64_t(n_rows)};
  const cuuint64_t strides[1] = {cuuint64_t(kMlaRow * 2)};
  const cuuint32_t box[2] = {64, cuuint32_t(kMlaPage)}, estride[2] = {1, 1};
  const CUresult r = encode(map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, const_cast<uint16_t*>(rows), dims, strides, box,
                            estride, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                            CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
  LING_CHECK(r == CUDA_SUCCESS, "mla decode (tma): cuTensorMapEncodeTiled failed for ", what, " (CUresult ", int(r),
             ")");
}

}  // namespace

void mla_encode_seq_map(void* out, const uint16_t* rows, int64_t cap_rows) {
  static_assert(sizeof(CUtensorMap) == kMlaSeqMapBytes, "a tensor map is 128 bytes");
  LING_CHECK(reinterpret_cast<uintptr_t>(out) % 64 == 0, "mla_encode_seq_map: output not 64-byte aligned");
  encode_rows(static_cast<CUtensorMap*>(out), rows, cap_rows, "a sequence's rows");
}

void launch_mla_split_tma(const MlaSplitArgs& a, cudaStream_t stream) {
  const MlaDecodeParams& p = a.p;
  CUtensorMap pool_map{};  // unused with seq_maps
  if (!p.seq_maps) {
    LING_CHECK(p.cache && p.page_table && p.num_pages > 0, "mla decode (tma): needs the page pool (cache, page_table, "
               "num_pages) or seq_maps");
    encode_rows(&pool_map, p.cache, p.num_pages * kMlaPage, "the page pool");
  } else {
    LING_CHECK(reinterpret_cast<uintptr_t>(p.seq_maps) % 64 == 0, "mla decode (tma): seq_maps not 64-byte aligned");
  }
  const dim3 grid(unsigned((p.nh + 63) / 64), unsigned(a.splits), unsigned(p.B));
  set_max_dynamic_smem(mla_split_tma_kernel, int(kSmemTma));
  mla_split_tma_kernel<<<grid, kThreads, kSmemTma, stream>>>(a, pool_map);
  LING_CUDA_CHECK(cudaGetLastError());
}

}  // namespace ling::kernels
