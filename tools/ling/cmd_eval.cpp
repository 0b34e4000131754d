// `ling eval`: not implemented yet (owned by its issue); says so with a non-zero exit.
#include "commands.h"
#include "ling/core/error.h"

namespace ling {
Command register_eval(CLI::App& app) {
  Command c;
  c.app = app.add_subcommand("eval", "(not implemented yet)");
  c.run = [](Context&) -> int { LING_THROW("'ling eval' is not implemented yet"); };
  return c;
}
}  // namespace ling
