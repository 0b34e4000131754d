// Runs a subcommand with its row in the results store: status 'running' before, then 'ok' / 'failed' with the
// exit code, wall time, build, host and device. With --no-db (or a command that opts out) it only runs it.
#pragma once
#include "commands.h"

namespace ling {
int run_recorded(Command& cmd, Context& ctx);
}
