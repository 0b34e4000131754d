// Provisional: runs the command without recording (the store records runs once lib/store lands).
#include "run_record.h"

#include "ling/core/error.h"

namespace ling {
int run_recorded(Command& cmd, Context& ctx) {
  ctx.require_store = []() -> Store& { LING_THROW("the results store is not available in this build"); };
  return cmd.run(ctx);
}
}  // namespace ling
