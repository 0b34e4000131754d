// The command tree of `ling`: one file per subcommand (cmd_<name>.cpp), each exposing register_<name>().
// A register function adds its CLI11 subcommand with an options struct (every member initialised) and returns
// the runner that main() calls after parsing. Work lives in the libraries; these files only bind options.
#pragma once
#include <CLI/CLI.hpp>
#include <functional>
#include <memory>
#include <string>
#include <vector>

namespace ling {
class Store;

// Options shared by every subcommand (bound in main.cpp).
struct GlobalOptions {
  std::string db_path;           // --db, LING_DB, default ling.sqlite in the working directory
  std::string log_level = "warn";  // --log-level
  bool no_db = false;            // --no-db: do not record the run
  std::vector<std::string> argv; // the full command line, recorded with the run
};

// What a running subcommand can reach: the global options and the run record (if the store is open).
struct Context {
  GlobalOptions global;
  std::string command;           // subcommand name
  std::string run_id;            // runs.run_id of this invocation ("" with --no-db)
  Store* store = nullptr;        // open results store, or nullptr with --no-db
  // Open the store (creating it) even when the command is not recorded; throws with a clear message.
  std::function<Store&()> require_store;
};

using Runner = std::function<int(Context&)>;
struct Command {
  CLI::App* app = nullptr;
  Runner run;
  bool record = true;            // record a row in `runs` (read-only commands may opt out)
};

Command register_inspect(CLI::App& app);
Command register_run(CLI::App& app);
Command register_compare(CLI::App& app);
Command register_synth(CLI::App& app);
Command register_bench(CLI::App& app);
Command register_eval(CLI::App& app);
Command register_results(CLI::App& app);
Command register_db(CLI::App& app);
Command register_calibrate(CLI::App& app);
Command register_convert(CLI::App& app);
Command register_tokenize(CLI::App& app);

}  // namespace ling
