// `ling db`: not implemented yet (owned by its issue); says so with a non-zero exit.
#include "commands.h"
#include "ling/core/error.h"

namespace ling {
Command register_db(CLI::App& app) {
  Command c;
  c.app = app.add_subcommand("db", "(not implemented yet)");
  c.run = [](Context&) -> int { LING_THROW("'ling db' is not implemented yet"); };
  return c;
}
}  // namespace ling
