// `ling synth`: not implemented yet (owned by its issue); says so with a non-zero exit.
#include "commands.h"
#include "ling/core/error.h"

namespace ling {
Command register_synth(CLI::App& app) {
  Command c;
  c.app = app.add_subcommand("synth", "(not implemented yet)");
  c.run = [](Context&) -> int { LING_THROW("'ling synth' is not implemented yet"); };
  return c;
}
}  // namespace ling
