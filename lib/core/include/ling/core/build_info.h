// Build provenance baked in at configure time: git revision, dirty flag, compiler, CUDA availability.
#pragma once
#include <string>

namespace ling {

struct BuildInfo {
  std::string git_rev;     // full sha1, or "unknown" outside a git checkout
  bool git_dirty;          // tracked files modified at configure time
  std::string version;     // project version
  std::string compiler;    // e.g. "GNU 12.2.0"
  std::string build_type;  // CMAKE_BUILD_TYPE
  bool cuda;               // built with the CUDA backend
};

const BuildInfo& build_info();
std::string host_name();

}  // namespace ling
