// Logging implementation: one line per message on stderr, prefixed by the level.
#include "ling/core/log.h"

#include <atomic>
#include <cstdio>
#include <mutex>

namespace ling {
namespace {
std::atomic<int> g_level{static_cast<int>(LogLevel::Warn)};
std::mutex g_mutex;
}  // namespace

void set_log_level(LogLevel level) { g_level = static_cast<int>(level); }
LogLevel log_level() { return static_cast<LogLevel>(g_level.load()); }

LogLevel parse_log_level(const std::string& name) {
  if (name == "debug") return LogLevel::Debug;
  if (name == "info") return LogLevel::Info;
  if (name == "warn" || name == "warning") return LogLevel::Warn;
  if (name == "error") return LogLevel::Error;
  if (name == "quiet") return LogLevel::Quiet;
  LING_THROW("unknown log level '", name, "' (expected debug, info, warn, error or quiet)");
}

void log_line(LogLevel level, const std::string& message) {
  static const char* names[] = {"debug", "info", "warning", "error", ""};
  std::lock_guard<std::mutex> lock(g_mutex);
  std::fprintf(stderr, "ling: %s: %s\n", names[static_cast<int>(level)], message.c_str());
}

}  // namespace ling
