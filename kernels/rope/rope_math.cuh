// Rotary-embedding arithmetic shared by the RoPE kernels (rope.cu) and the Lightning decode kernel's q/k fold
// (lightning_decode.cu), so that both give ref::rope's results bit for bit.
#pragma once

#include <cstdint>

namespace ling::kernels {

// cos and sin of pair j at position p, times af: f32 angle, double trig rounded to f32 (ref::rope).
__device__ __forceinline__ void rope_cs(float p, const float* inv_freq, int64_t j, float af, float& c, float& s) {
  const float ang = p * inv_freq[j];
  c = float(cos(double(ang))) * af;
  s = float(sin(double(ang))) * af;
}

// Element i < 2·half of a head after RoPE, from the head's values before it in buf (shared memory), with the
// factors c, s of its pair (rope_cs of i mod half): NeoX pairs (j, j + half) or interleaved (2j, 2j + 1).
__device__ __forceinline__ float rope_rotated(const float* buf, int64_t i, int64_t half, float c, float s,
                                              bool inter) {
  const int64_t j = i < half ? i : i - half;
  const float x1 = inter ? buf[2 * j] : buf[j], x2 = inter ? buf[2 * j + 1] : buf[j + half];
  return i < half ? x1 * c - x2 * s : x2 * c + x1 * s;
}

}  // namespace ling::kernels
