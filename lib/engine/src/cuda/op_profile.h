// Per-op device time of the CUDA backend (LING_CUDA_PROFILE=1): every backend op and every GEMM/GEMV shape is
// bracketed by CUDA events on the backend's stream; the times are collected at the next host synchronisation
// and summed per name. The table (calls, total ms, µs per call, share of the top-level ops) goes to stderr when
// the backend is destroyed. Profiling turns decode-step graphs off (events are recorded eagerly); each decode
// step starts behind a 50 ms spin kernel so that the host has queued the whole step before the device runs it,
// and the event times of decode ops are device times without launch gaps. Use it to see where time goes, and
// `ling bench` for the step's real speed.
#pragma once
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdio>
#include <map>
#include <string>
#include <vector>

namespace ling::cuda {

class OpProfile {
 public:
  bool on() const { return on_; }
  void set_prefix(const std::string& p) { prefix_ = p; }  // e.g. "step " for the ops of decode steps
  void enable(cudaStream_t s) {
    on_ = true;
    stream_ = s;
  }
  // Returns a ticket for end(); names starting with '.' are nested (not counted in the total).
  int begin(const std::string& name) {
    if (!on_) return -1;
    Pending p{name[0] == '.' ? "." + prefix_ + name.substr(1) : prefix_ + name, nullptr, nullptr};
    cudaEventCreate(&p.a);
    cudaEventCreate(&p.b);
    cudaEventRecord(p.a, stream_);
    pending_.push_back(p);
    ++open_;
    return int(pending_.size()) - 1;
  }
  void end(int ticket) {
    if (ticket < 0) return;
    cudaEventRecord(pending_[size_t(ticket)].b, stream_);
    --open_;
  }
  // After a host synchronisation: fold the recorded intervals into the sums (once no scope is open, so that
  // tickets stay valid).
  void collect() {
    if (open_ > 0) return;
    for (Pending& p : pending_) {
      float ms = 0.0f;
      if (cudaEventElapsedTime(&ms, p.a, p.b) == cudaSuccess) {
        Sum& s = sums_[p.name];
        ++s.calls;
        s.ms += ms;
      }
      cudaEventDestroy(p.a);
      cudaEventDestroy(p.b);
    }
    pending_.clear();
  }
  void print() const {
    if (!on_ || sums_.empty()) return;
    double total = 0.0;
    for (const auto& [n, s] : sums_)
      if (n[0] != '.') total += s.ms;
    std::vector<std::pair<std::string, Sum>> rows(sums_.begin(), sums_.end());
    std::sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.second.ms > b.second.ms; });
    std::fprintf(stderr, "cuda profile (eager ops; nested entries start with '.'):\n%-44s %8s %10s %10s %7s\n", "op",
                 "calls", "total ms", "us/call", "share");
    for (const auto& [n, s] : rows)
      std::fprintf(stderr, "%-44s %8lld %10.3f %10.2f %6.1f%%\n", n.c_str(), (long long)s.calls, s.ms,
                   1e3 * s.ms / double(std::max<int64_t>(s.calls, 1)), total > 0 ? 100.0 * s.ms / total : 0.0);
  }

 private:
  struct Pending {
    std::string name;
    cudaEvent_t a, b;
  };
  struct Sum {
    int64_t calls = 0;
    double ms = 0.0;
  };
  bool on_ = false;
  int open_ = 0;
  std::string prefix_;
  cudaStream_t stream_ = nullptr;
  std::vector<Pending> pending_;
  std::map<std::string, Sum> sums_;
};

// Brackets a scope with OpProfile::begin/end.
class OpScope {
 public:
  OpScope(OpProfile& p, const char* name) : p_(p), t_(p.on() ? p.begin(name) : -1) {}
  OpScope(OpProfile& p, const std::string& name) : p_(p), t_(p.on() ? p.begin(name) : -1) {}
  ~OpScope() { p_.end(t_); }
  OpScope(const OpScope&) = delete;
  OpScope& operator=(const OpScope&) = delete;

 private:
  OpProfile& p_;
  int t_;
};

}  // namespace ling::cuda
