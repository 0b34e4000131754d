// `ling` entry point: builds the CLI11 command tree, parses, opens the results store, records the run and
// calls the chosen subcommand. Every error ends as one line on stderr and a non-zero exit (CLI11 parse errors
// keep CLI11's exit codes); nothing else catches.
#include <cstdlib>
#include <iostream>

#include "commands.h"
#include "ling/core/build_info.h"
#include "ling/core/error.h"
#include "ling/core/log.h"
#include "run_record.h"

int main(int argc, char** argv) {
  using namespace ling;
  CLI::App app{"ling: inspect, run, evaluate, calibrate and convert Ling 2.x hybrid-attention MoE models"};
  app.require_subcommand(1);
  app.set_version_flag("--version", cat("ling ", build_info().version, " (", build_info().git_rev.substr(0, 12),
                                        build_info().git_dirty ? "-dirty" : "", build_info().cuda ? ", cuda" : "",
                                        ")"));
  GlobalOptions global;
  if (const char* env = std::getenv("LING_DB")) global.db_path = env;
  if (global.db_path.empty()) global.db_path = "ling.sqlite";
  app.add_option("--db", global.db_path, "Results database (default ling.sqlite; env LING_DB)");
  app.add_option("--log-level", global.log_level, "debug|info|warn|error|quiet")->envname("LING_LOG");
  app.add_flag("--no-db", global.no_db, "Do not record this run in the results database");
  for (int i = 0; i < argc; ++i) global.argv.emplace_back(argv[i]);

  std::vector<Command> commands = {
      register_inspect(app),  register_run(app),     register_compare(app), register_synth(app),
      register_bench(app),    register_eval(app),    register_results(app), register_db(app),
      register_calibrate(app), register_convert(app), register_tokenize(app),
  };
  // Options are global but may follow the subcommand name.
  for (auto& c : commands) c.app->fallthrough();

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  int rc = 1;
  try {
    set_log_level(parse_log_level(global.log_level));
    for (auto& c : commands) {
      if (!c.app->parsed()) continue;
      Context ctx;
      ctx.global = global;
      ctx.command = c.app->get_name();
      rc = run_recorded(c, ctx);
      break;
    }
  } catch (const Error& e) {
    std::cerr << "ling: error: " << e.what() << "\n";
    if (log_level() <= LogLevel::Debug && e.line() > 0) std::cerr << "  (at " << e.file() << ":" << e.line() << ")\n";
    return 1;
  } catch (const std::exception& e) {
    std::cerr << "ling: error: " << e.what() << "\n";
    return 1;
  }
  return rc;
}
