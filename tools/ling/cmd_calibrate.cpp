// `ling calibrate`: not implemented yet (owned by its issue); says so with a non-zero exit.
#include "commands.h"
#include "ling/core/error.h"

namespace ling {
Command register_calibrate(CLI::App& app) {
  Command c;
  c.app = app.add_subcommand("calibrate", "(not implemented yet)");
  c.run = [](Context&) -> int { LING_THROW("'ling calibrate' is not implemented yet"); };
  return c;
}
}  // namespace ling
