// Environment switches of the CUDA backend (LING_CUDA_PDL, LING_CUDA_MLA_PAGED, LING_CUDA_SYNC): on when set,
// non-empty and not "0".
#pragma once
#include <cstdlib>
#include <string>

namespace ling::cuda {

inline bool env_flag(const char* name) {
  const char* v = std::getenv(name);
  return v && *v && std::string(v) != "0";
}

}  // namespace ling::cuda
