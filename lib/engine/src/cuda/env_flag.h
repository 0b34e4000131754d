// Environment switches of the CUDA backend (LING_CUDA_PDL, LING_CUDA_MLA_PAGED, LING_CUDA_SYNC, …): unset or empty
// gives the switch's default, "0" turns it off, any other value on; counts (LING_CUDA_GATE_UP_STREAM) are numbers.
#pragma once
#include <cstdlib>
#include <string>

namespace ling::cuda {

inline bool env_flag(const char* name, bool dflt = false) {
  const char* v = std::getenv(name);
  if (!v || !*v) return dflt;
  return std::string(v) != "0";
}

// A count in [0, max] (CTAs per SM, threads per CTA): unset, empty, not a number or out of range gives dflt.
inline int env_count(const char* name, int dflt, int max) {
  const char* v = std::getenv(name);
  if (!v || !*v) return dflt;
  char* end = nullptr;
  const long n = std::strtol(v, &end, 10);
  return (*end || n < 0 || n > max) ? dflt : int(n);
}

}  // namespace ling::cuda
