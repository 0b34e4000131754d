// Internal to kernels/mla: the split pass's arguments, shared by the mma.sync kernels (mla_decode.cu) and the
// wgmma kernel (mla_decode_wgmma.cu), and the latter's launcher.
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "ling/kernels/mla_decode.h"

namespace ling::kernels {

struct MlaSplitArgs {
  MlaDecodeParams p;
  float* ws_u;   // [B, splits, nh, 512] partial accumulators
  float* ws_ml;  // [B, splits, nh, 2] (running max, sum)
  int splits, pages_per_split;
};

// First cache row of page `page` (0-based within the sequence) of sequence b.
__device__ __forceinline__ const uint16_t* mla_page_rows(const MlaDecodeParams& p, int64_t b, int64_t page) {
  return p.seq_cache ? p.seq_cache[b] + page * kMlaPage * kMlaRow
                     : p.cache + int64_t(p.page_table[b * p.max_pages + page]) * kMlaPage * kMlaRow;
}

// A split-pass CTA's share (grid x: head blocks of `rows`, y: splits, z: sequences): heads [h0, h0 + nh_here) of
// sequence b, its tokens [t_begin, t_end) of split `split` (empty when the sequence is shorter).
struct MlaCtaWork {
  int64_t b, split, h0, t_begin, t_end;
  int nh_here;
};
__device__ __forceinline__ MlaCtaWork mla_cta_work(const MlaSplitArgs& a, int rows) {
  MlaCtaWork w;
  w.b = blockIdx.z, w.split = blockIdx.y, w.h0 = int64_t(blockIdx.x) * rows;
  w.nh_here = int(a.p.nh - w.h0 < rows ? a.p.nh - w.h0 : rows);
  w.t_begin = w.split * a.pages_per_split * kMlaPage;
  const int64_t stop = w.t_begin + int64_t(a.pages_per_split) * kMlaPage, len = a.p.seq_len[w.b];
  w.t_end = len < stop ? len : stop;
  return w;
}

// Pass 1 on warpgroup MMAs, 64 heads per CTA; exact = softmax weights as bf16 hi + lo (else hi only).
void launch_mla_split_wgmma(const MlaSplitArgs& a, bool exact, cudaStream_t stream);
// Pass 1 on warpgroup MMAs, bf16 softmax weights, ping-pong schedule (mla_decode_pingpong.cu).
void launch_mla_split_pingpong(const MlaSplitArgs& a, cudaStream_t stream);
// Pass 1 on warpgroup MMAs, bf16 softmax weights, pages by TMA from the pool (mla_decode_tma.cu).
void launch_mla_split_tma(const MlaSplitArgs& a, cudaStream_t stream);

}  // namespace ling::kernels
