// Perplexity and KL divergence over a token stream (eval.md §3, §4).
// Windows: disjoint (stride 0; llama.cpp-like chunks, every token of a chunk scored) or HF sliding windows
// (window n_ctx moved by stride; only tokens not yet scored are targets). With a BOS the window is
// [BOS] + up to n_ctx-1 text tokens and every text token is scored; without one the first text token of the
// stream is never scored. KLD runs MODEL and REFERENCE in lock-step over the same windows, `block` positions
// at a time, so only 2 x block x vocab logits are alive; nothing is written to disk.
// KLD(P_ref || Q_model) = sum_v p_ref(v) (log p_ref(v) - log q(v)), exact over the full vocabulary (fp64).
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "ling/eval/model_io.h"

namespace ling::eval {

struct PplOptions {
  int64_t n_ctx = 512;       // window length in tokens (BOS included)
  int64_t stride = 0;        // 0: disjoint windows; else sliding with this stride (<= window capacity)
  int64_t max_windows = 0;   // 0: all
  int64_t block = 64;        // positions appended per step (KLD lock-step granularity)
};

struct Window {
  int64_t begin = 0;         // first text token in the window
  int64_t end = 0;           // one past the last
  int64_t first_scored = 0;  // first target token (>= begin)
};

std::vector<Window> plan_windows(int64_t n_tokens, const PplOptions& opt, bool has_bos);

// Per-window result; the per-token arrays cover the window's scored targets in order.
struct WindowResult {
  int64_t n_bytes = 0;             // UTF-8 bytes of the scored targets
  std::vector<float> nll;          // -log q(target) under MODEL
  std::vector<float> nll_ref;      // KLD only: -log p(target) under REFERENCE
  std::vector<float> kld;          // KLD only
  std::vector<float> dp;           // KLD only: q(target) - p(target)
  std::vector<uint8_t> same_top;   // KLD only: argmax agreement
};

// ref == nullptr: perplexity only.
WindowResult score_window(LogitsSource& model, LogitsSource* ref, const TokenizerLike& tok,
                          const std::vector<int32_t>& tokens, const Window& w, int64_t block);

struct Stat {
  std::string name;
  double value = 0;
  double stderr_ = -1;   // -1: none
  int64_t n = 0;
  bool higher_is_better = false;
};

// Perplexity: ppl (± from per-token NLL variance), nll_mean, bits_per_byte, byte_ppl, n_tokens, n_bytes.
std::vector<Stat> summarize_ppl(const std::vector<WindowResult>& windows);
// KLD statistics (§4): kld_mean ± , kld_median, kld_p90, kld_p99, kld_p999, kld_max, kld_min, same_top_pct ±,
// dp_mean, dp_rms, dlogp_mean (mean log q - log p of the target), ppl, ppl_ref, ppl_ratio, ln_ppl_ratio.
std::vector<Stat> summarize_kld(const std::vector<WindowResult>& windows);
// KLD histogram: fraction of tokens per bin; bins "[0,1e-4)", "[1e-4,1e-3)", ..., "[10,inf)".
std::vector<std::pair<std::string, double>> kld_histogram(const std::vector<WindowResult>& windows);

// Percentile with linear interpolation between closest ranks (q in [0, 1]); values need not be sorted.
double percentile(std::vector<double> values, double q);

}  // namespace ling::eval
