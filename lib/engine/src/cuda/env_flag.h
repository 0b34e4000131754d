// Environment switches of the CUDA backend (LING_CUDA_PDL, LING_CUDA_MLA_PAGED, LING_CUDA_SYNC, …): unset or empty
// gives the switch's default, "0" turns it off, any other value on.
#pragma once
#include <cstdlib>
#include <string>

namespace ling::cuda {

inline bool env_flag(const char* name, bool dflt = false) {
  const char* v = std::getenv(name);
  if (!v || !*v) return dflt;
  return std::string(v) != "0";
}

}  // namespace ling::cuda
