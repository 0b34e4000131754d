// `ling bench`: not implemented yet (owned by its issue); says so with a non-zero exit.
#include "commands.h"
#include "ling/core/error.h"

namespace ling {
Command register_bench(CLI::App& app) {
  Command c;
  c.app = app.add_subcommand("bench", "(not implemented yet)");
  c.run = [](Context&) -> int { LING_THROW("'ling bench' is not implemented yet"); };
  return c;
}
}  // namespace ling
