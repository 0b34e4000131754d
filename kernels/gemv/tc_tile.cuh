// Tensor-core tile of the small-batch GEMVs (gemv.cu for 2..16 rows of x, moe_experts.cu for the tokens of one
// expert): one warp accumulates C[16 weight rows, 8·NT tokens] += W[16, K-slice]·Xᵀ with mma.sync m16n8k16
// (bf16 operands, fp32 accumulation). The fp32 activations are split into bf16 hi + lo and both parts go through
// the MMA, so the result carries fp32-activation accuracy (the residual x − hi − lo is below 2⁻¹⁶·|x|) while each
// weight is loaded once from memory for all tokens.
// Operand layout: the dot product does not depend on the order of k, so each lane feeds the MMA the k indices it
// loaded itself: lane (g = lane / 4, c = lane % 4) loads 8 consecutive weights (one 16-byte load) of rows g and
// g + 8 and the same 8 columns of token g's activations; words 0–1 of those loads are the first k16 step, words
// 2–3 the second. In the fragments of m16n8k16, lane (g, c) holds A[g][2c, 2c+1, 2c+8, 2c+9], A[g+8][same] and
// B[2c, 2c+1, 2c+8, 2c+9][g]; mapping logical k {2c, 2c+1, 2c+8, 2c+9} to physical columns 8c + {0, 1, 2, 3}
// (then 8c + {4..7}) covers each of a 32-column step exactly once. Accumulator lane (g, c) ends with
// C[g][2c, 2c+1] in acc[j][0..1] and C[g+8][2c, 2c+1] in acc[j][2..3] for token tile j.
// The K loop of a warp runs the 32-column steps warp, warp + nwarps, … (the CTA's warps split K); the caller
// adds the warps' tiles in a fixed order (deterministic).
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

namespace ling::kernels {
namespace {

__device__ __forceinline__ uint4 ld_stream16(const uint16_t* p) {
  uint4 r;
  asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
               : "=r"(r.x), "=r"(r.y), "=r"(r.z), "=r"(r.w)
               : "l"(p));
  return r;
}

__device__ __forceinline__ void mma_bf16_16816(float (&d)[4], uint32_t a0, uint32_t a1, uint32_t a2, uint32_t a3,
                                               uint32_t b0, uint32_t b1) {
  asm volatile(
      "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
      "{%0, %1, %2, %3};"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
      : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

// (a, b) → bf16x2 hi (a in the low half) and the bf16x2 of the rounding residuals.
__device__ __forceinline__ void split2(float a, float b, uint32_t& hi, uint32_t& lo) {
  const __nv_bfloat162 h = __floats2bfloat162_rn(a, b);
  const __nv_bfloat162 l = __floats2bfloat162_rn(a - __low2float(h), b - __high2float(h));
  hi = *reinterpret_cast<const uint32_t*>(&h);
  lo = *reinterpret_cast<const uint32_t*>(&l);
}

// C[16, 8·NT] += W·Xᵀ over this warp's 32-column steps of K (K % 8 == 0). w_g / w_g8: this lane's weight rows g
// and g + 8 (null = a row past the end: zeros). x_rows[j]: token 8j + g's activation row (null = no token).
// U steps are loaded before any MMA runs (4·U … 8·U 16-byte loads in flight per lane).
template <int NT, int U>
__device__ __forceinline__ void tc_tile_accumulate(const uint16_t* w_g, const uint16_t* w_g8,
                                                   const float* const (&x_rows)[NT], int64_t K, int warp,
                                                   int nwarps, float (&acc)[NT][4]) {
  const int c = threadIdx.x & 3;
  const uint4 z4 = make_uint4(0, 0, 0, 0);
  for (int64_t s0 = warp; s0 * 32 < K; s0 += int64_t(nwarps) * U) {
    uint4 wg[U], wg8[U];  // rows g and g + 8
    float4 xv[U][NT][2];
#pragma unroll
    for (int u = 0; u < U; ++u) {
      const int64_t kk = (s0 + int64_t(u) * nwarps) * 32 + 8 * c;
      const bool in = kk < K;
      wg[u] = in && w_g ? ld_stream16(w_g + kk) : z4;
      wg8[u] = in && w_g8 ? ld_stream16(w_g8 + kk) : z4;
#pragma unroll
      for (int j = 0; j < NT; ++j) {
        if (in && x_rows[j]) {
          xv[u][j][0] = __ldg(reinterpret_cast<const float4*>(x_rows[j] + kk));
          xv[u][j][1] = __ldg(reinterpret_cast<const float4*>(x_rows[j] + kk + 4));
        } else {
          xv[u][j][0] = xv[u][j][1] = make_float4(0.f, 0.f, 0.f, 0.f);
        }
      }
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
#pragma unroll
      for (int j = 0; j < NT; ++j) {
        uint32_t h0, l0, h1, l1, h2, l2, h3, l3;
        split2(xv[u][j][0].x, xv[u][j][0].y, h0, l0);
        split2(xv[u][j][0].z, xv[u][j][0].w, h1, l1);
        split2(xv[u][j][1].x, xv[u][j][1].y, h2, l2);
        split2(xv[u][j][1].z, xv[u][j][1].w, h3, l3);
        mma_bf16_16816(acc[j], wg[u].x, wg8[u].x, wg[u].y, wg8[u].y, h0, h1);
        mma_bf16_16816(acc[j], wg[u].x, wg8[u].x, wg[u].y, wg8[u].y, l0, l1);
        mma_bf16_16816(acc[j], wg[u].z, wg8[u].z, wg[u].w, wg8[u].w, h2, h3);
        mma_bf16_16816(acc[j], wg[u].z, wg8[u].z, wg[u].w, wg8[u].w, l2, l3);
      }
    }
  }
}

// Sums the 8 warps' tiles of a CTA in warp order into warp 0's acc (red: 8·NT·4·32 floats of shared memory).
// Every thread of the CTA must call it; afterwards only warp 0's acc holds the sums.
template <int NT>
__device__ __forceinline__ void tc_tile_reduce8(float (&acc)[NT][4], float* red) {
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
#pragma unroll
  for (int j = 0; j < NT; ++j)
#pragma unroll
    for (int r = 0; r < 4; ++r) red[((warp * NT + j) * 4 + r) * 32 + lane] = acc[j][r];
  __syncthreads();
  if (warp == 0) {
#pragma unroll
    for (int j = 0; j < NT; ++j)
#pragma unroll
      for (int r = 0; r < 4; ++r) {
        float s = red[((0 * NT + j) * 4 + r) * 32 + lane];
        for (int w = 1; w < 8; ++w) s += red[((w * NT + j) * 4 + r) * 32 + lane];
        acc[j][r] = s;
      }
  }
}

}  // namespace
}  // namespace ling::kernels
