// Counter-based normal generator for random-weight checkpoints (fixtures/ling25-tiny/README.md, "How it was
// produced" step 2), so that a tensor's values depend only on (name, seed, index) and any slice can be made
// on its own, in any order, by any thread:
//   key = mix(fnv1a64(name) ^ mix(seed)),  x_j = mix(key + (j+1) * 0x9E3779B97F4A7C15),  u_j = (x_j >> 11) * 2^-53
//   z_i = (u_4i + u_4i+1 + u_4i+2 + u_4i+3 - 2) * sqrt(3)       (Irwin-Hall: mean 0, variance 1, |z| <= 3.47)
//   value_i = float32(mean + std * z_i)                          (double arithmetic, one rounding)
// with mix the splitmix64 finalizer. Reproduces the fixtures' model.safetensors bit for bit.
#pragma once
#include <cstddef>
#include <cstdint>
#include <string_view>

namespace ling::synth {

uint64_t fnv1a64(std::string_view s);
uint64_t mix64(uint64_t z);  // splitmix64 finalizer

struct NormalStream {
  uint64_t key = 0;
  double mean = 0.0, std = 1.0;
  NormalStream(std::string_view name, uint64_t seed, double mean, double std);
  double z(uint64_t i) const;                       // the i-th standard value (element index)
  float value(uint64_t i) const { return static_cast<float>(mean + std * z(i)); }
  void fill(float* dst, uint64_t first, size_t n) const;  // dst[k] = value(first + k)
};

}  // namespace ling::synth
