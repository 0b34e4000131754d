// Build provenance (values injected by lib/core/CMakeLists.txt).
#include "ling/core/build_info.h"

#include <unistd.h>

namespace ling {

const BuildInfo& build_info() {
  static const BuildInfo info{LING_GIT_REV, LING_GIT_DIRTY != 0, LING_VERSION, LING_COMPILER, LING_BUILD_TYPE,
                              LING_HAS_CUDA != 0};
  return info;
}

std::string host_name() {
  char buf[256] = {0};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "unknown";
  return buf;
}

}  // namespace ling
