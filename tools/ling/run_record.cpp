// Runs a subcommand with its row in the results store (run_record.h): 'running' before, then 'ok' or
// 'failed' with the exit code and wall time. A command that throws is recorded as failed and the error is
// rethrown to main(), which prints it. With --no-db, or for commands that opt out, nothing is recorded.
#include "run_record.h"

#include "ling/core/error.h"
#include "ling/store/store.h"

namespace ling {

int run_recorded(Command& cmd, Context& ctx) {
  std::unique_ptr<Store> store;
  ctx.require_store = [&store, &ctx]() -> Store& {
    if (!store) store = Store::open(ctx.global.db_path);
    ctx.store = store.get();
    return *store;
  };
  if (ctx.global.no_db || !cmd.record) return cmd.run(ctx);

  Store& s = ctx.require_store();
  ctx.run_id = s.begin_run(ctx.command, ctx.global.argv);
  int rc = 1;
  try {
    rc = cmd.run(ctx);
  } catch (...) {
    try {
      s.end_run(ctx.run_id, "failed", 1);
    } catch (...) {
      // the original error matters more than a failure to record it
    }
    throw;
  }
  s.end_run(ctx.run_id, rc == 0 ? "ok" : "failed", rc);
  return rc;
}

}  // namespace ling
