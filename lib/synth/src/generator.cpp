// Counter-based normal generator (see generator.h for the exact formula and its source).
#include "ling/synth/generator.h"

#include <cmath>

namespace ling::synth {

uint64_t fnv1a64(std::string_view s) {
  uint64_t h = 0xcbf29ce484222325ull;
  for (char c : s) {
    h ^= static_cast<unsigned char>(c);
    h *= 0x100000001b3ull;
  }
  return h;
}

uint64_t mix64(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

NormalStream::NormalStream(std::string_view name, uint64_t seed, double m, double s)
    : key(mix64(fnv1a64(name) ^ mix64(seed))), mean(m), std(s) {}

double NormalStream::z(uint64_t i) const {
  constexpr uint64_t kGamma = 0x9E3779B97F4A7C15ull;
  const double scale = 1.0 / 9007199254740992.0;  // 2^-53
  double sum = 0.0;
  for (uint64_t k = 0; k < 4; ++k) {
    uint64_t j = 4 * i + k;
    sum += static_cast<double>(mix64(key + (j + 1) * kGamma) >> 11) * scale;
  }
  return (sum - 2.0) * std::sqrt(3.0);
}

void NormalStream::fill(float* dst, uint64_t first, size_t n) const {
  for (size_t k = 0; k < n; ++k) dst[k] = value(first + k);
}

}  // namespace ling::synth
