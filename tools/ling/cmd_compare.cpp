// `ling compare`: not implemented yet (owned by its issue); says so with a non-zero exit.
#include "commands.h"
#include "ling/core/error.h"

namespace ling {
Command register_compare(CLI::App& app) {
  Command c;
  c.app = app.add_subcommand("compare", "(not implemented yet)");
  c.run = [](Context&) -> int { LING_THROW("'ling compare' is not implemented yet"); };
  return c;
}
}  // namespace ling
