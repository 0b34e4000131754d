// Logging to stderr with a global level (set once by the CLI from --log-level / LING_LOG).
// Warnings are for things the user should know (a defaulted config key); info for progress; debug for detail.
#pragma once
#include <string>

#include "ling/core/error.h"

namespace ling {

enum class LogLevel { Debug = 0, Info = 1, Warn = 2, Error = 3, Quiet = 4 };

void set_log_level(LogLevel level);
LogLevel log_level();
LogLevel parse_log_level(const std::string& name);  // debug|info|warn|error|quiet; throws otherwise
void log_line(LogLevel level, const std::string& message);

template <typename... Ts>
void log_warn(const Ts&... parts) {
  if (log_level() <= LogLevel::Warn) log_line(LogLevel::Warn, cat(parts...));
}
template <typename... Ts>
void log_info(const Ts&... parts) {
  if (log_level() <= LogLevel::Info) log_line(LogLevel::Info, cat(parts...));
}
template <typename... Ts>
void log_debug(const Ts&... parts) {
  if (log_level() <= LogLevel::Debug) log_line(LogLevel::Debug, cat(parts...));
}

}  // namespace ling
