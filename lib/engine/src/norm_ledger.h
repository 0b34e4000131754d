// The bookkeeping of the residual add + norms that batch-1 decode steps leave to the kernels reading their outputs
// (the CUDA backend's LING_CUDA_NORM_HEAD, cuda/cuda_backend.h): which norm is pending, where the residual's value
// lives, and what a consumer's head or a settle must do. A head cannot update h in place (the consumer's other CTAs
// may still be reading it), so it writes h + d to an alternate buffer: the engine's buffer is then "displaced"
// until the next head writes the sum back, or a settle copies it home. Host logic only: the backend performs the
// steps these functions return, and tests/engine_cpu/test_norm_ledger.cpp replays random sequences of ops on host
// rows against the eager add + norms.
#pragma once
#include <optional>

namespace ling {

class NormLedger {
 public:
  // h += d (d null: no add), then y = RMSNorm(h) · w.
  struct Norm {
    float* h;
    const float* d;
    const float* w;
    float* y;
  };
  // What a head computes: y = RMSNorm(h_in + d) · w and, with d, h_out = h_in + d.
  struct Head {
    const float* h_in;
    const float* d;
    const float* w;
    float* h_out;  // null without d
    float* y;
  };
  // What to do, in this order: copy the residual from the alternate buffer to `home` (when set), then run `launch`
  // as an ordinary in-place add + norm (when set).
  struct Settle {
    float* home = nullptr;
    std::optional<Norm> launch;
  };

  explicit NormLedger(float* alt = nullptr) : alt_(alt) {}
  void set_alt(float* alt) { alt_ = alt; }
  const float* alt() const { return alt_; }

  // Nothing pending and no residual displaced.
  bool idle() const { return !pending_ && !home_; }
  // An op whose first kernel reads x keeps the pending norm when x is that norm's output.
  bool keeps(const float* x) const { return pending_ && pending_->y == x; }

  // Leaves n pending. Returns what must happen first: a norm already pending is launched, and a residual displaced
  // from another buffer goes home (one displaced at n.h stays: the head will read it where it is).
  Settle defer(const Norm& n) {
    Settle first;
    if (pending_ || (home_ && home_ != n.h)) first = settle();
    pending_ = n;
    return first;
  }

  // The pending norm as the head of the kernel about to read x, when that kernel can run one (eligible) and x is
  // the norm's output; otherwise `first` says what to do before that kernel (settle) and there is no head.
  std::optional<Head> take(const float* x, bool eligible, Settle& first) {
    first = {};
    if (!pending_) return std::nullopt;
    if (!eligible || pending_->y != x) {
      first = settle();
      return std::nullopt;
    }
    const Norm n = *pending_;
    pending_.reset();
    const bool displaced = home_ == n.h;
    Head t{displaced ? alt_ : n.h, n.d, n.w, nullptr, n.y};
    if (n.d) {  // h + d goes to the other buffer: the engine's comes home or is displaced
      t.h_out = displaced ? n.h : alt_;
      home_ = displaced ? nullptr : n.h;
    }
    return t;
  }

  // Everything owed, before any other op reads or writes the residual or the norm's output.
  Settle settle() {
    Settle s;
    if (home_) s.home = home_, home_ = nullptr;
    if (pending_) s.launch = *pending_, pending_.reset();
    return s;
  }

 private:
  float* alt_;
  std::optional<Norm> pending_;
  float* home_ = nullptr;  // the engine's buffer whose value is in alt_
};

}  // namespace ling
