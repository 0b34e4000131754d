// Progress bar on stderr: "label  done/total  tokens/s  ETA". Silent when stderr is not a terminal (or when
// disabled). Redraws at most 10 times a second; finish() ends the line.
#pragma once
#include <chrono>
#include <cstdint>
#include <string>

namespace ling::eval {

class Progress {
 public:
  Progress(std::string label, int64_t total, bool enabled = true);
  ~Progress();
  void advance(int64_t done_delta, int64_t tokens_delta);
  void finish();
  static bool stderr_is_terminal();
  // The line that would be drawn (exposed for tests).
  static std::string format(const std::string& label, int64_t done, int64_t total, double tokens_per_s,
                            double eta_s);

 private:
  void draw(bool force);
  std::string label_;
  int64_t total_, done_ = 0, tokens_ = 0;
  bool enabled_, finished_ = false;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

}  // namespace ling::eval
