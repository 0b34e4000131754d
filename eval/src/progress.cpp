// Progress bar (progress.h).
#include "ling/eval/progress.h"

#include <unistd.h>

#include <cmath>
#include <cstdio>

#include "ling/core/error.h"

namespace ling::eval {

Progress::Progress(std::string label, int64_t total, bool enabled)
    : label_(std::move(label)), total_(total), enabled_(enabled && stderr_is_terminal()),
      start_(std::chrono::steady_clock::now()), last_draw_(start_) {}

Progress::~Progress() { finish(); }

bool Progress::stderr_is_terminal() { return isatty(STDERR_FILENO) == 1; }

std::string Progress::format(const std::string& label, int64_t done, int64_t total, double tps, double eta) {
  const int width = 24;
  int fill = total > 0 ? static_cast<int>(width * double(done) / double(total)) : 0;
  std::string bar(size_t(fill), '#');
  bar += std::string(size_t(width - fill), '.');
  std::string eta_s = "--:--";
  if (eta >= 0 && std::isfinite(eta)) {
    int64_t e = static_cast<int64_t>(eta + 0.5);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%02lld:%02lld:%02lld", (long long)(e / 3600), (long long)(e / 60 % 60),
                  (long long)(e % 60));
    eta_s = buf;
  }
  char tps_buf[32];
  std::snprintf(tps_buf, sizeof tps_buf, "%.1f", tps);
  return cat(label, " [", bar, "] ", done, "/", total, "  ", tps_buf, " tok/s  ETA ", eta_s);
}

void Progress::advance(int64_t done_delta, int64_t tokens_delta) {
  done_ += done_delta;
  tokens_ += tokens_delta;
  draw(false);
}

void Progress::draw(bool force) {
  if (!enabled_ || finished_) return;
  auto now = std::chrono::steady_clock::now();
  if (!force && now - last_draw_ < std::chrono::milliseconds(100) && done_ < total_) return;
  last_draw_ = now;
  double s = std::chrono::duration<double>(now - start_).count();
  double tps = s > 0 ? double(tokens_) / s : 0;
  double eta = done_ > 0 ? s / double(done_) * double(total_ - done_) : -1;
  std::fprintf(stderr, "\r%s\033[K", format(label_, done_, total_, tps, eta).c_str());
  std::fflush(stderr);
}

void Progress::finish() {
  if (!enabled_ || finished_) return;
  draw(true);
  std::fprintf(stderr, "\n");
  finished_ = true;
}

}  // namespace ling::eval
