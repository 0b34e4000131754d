// `ling tokenize`: not implemented yet (owned by its issue); says so with a non-zero exit.
#include "commands.h"
#include "ling/core/error.h"

namespace ling {
Command register_tokenize(CLI::App& app) {
  Command c;
  c.app = app.add_subcommand("tokenize", "(not implemented yet)");
  c.run = [](Context&) -> int { LING_THROW("'ling tokenize' is not implemented yet"); };
  return c;
}
}  // namespace ling
