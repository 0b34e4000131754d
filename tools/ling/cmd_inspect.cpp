// `ling inspect`: not implemented yet (owned by its issue); says so with a non-zero exit.
#include "commands.h"
#include "ling/core/error.h"

namespace ling {
Command register_inspect(CLI::App& app) {
  Command c;
  c.app = app.add_subcommand("inspect", "(not implemented yet)");
  c.run = [](Context&) -> int { LING_THROW("'ling inspect' is not implemented yet"); };
  return c;
}
}  // namespace ling
