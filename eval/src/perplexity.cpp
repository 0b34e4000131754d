// Perplexity / KLD windows and statistics (perplexity.h). Log-softmax in fp64 per row.
#include "ling/eval/perplexity.h"

#include <algorithm>
#include <cmath>

#include "ling/core/error.h"

namespace ling::eval {

std::vector<Window> plan_windows(int64_t n_tokens, const PplOptions& opt, bool has_bos) {
  const int64_t cap = opt.n_ctx - (has_bos ? 1 : 0);
  LING_CHECK(cap >= 2, "perplexity: --ctx ", opt.n_ctx, " is too small (needs at least ", has_bos ? 3 : 2, ")");
  LING_CHECK(opt.stride >= 0 && opt.stride <= cap, "perplexity: --stride ", opt.stride, " must be in 0..", cap);
  LING_CHECK(n_tokens >= 2, "perplexity: the text has ", n_tokens, " tokens; need at least 2");
  std::vector<Window> out;
  if (opt.stride == 0) {
    for (int64_t b = 0; b < n_tokens; b += cap) {
      int64_t e = std::min(n_tokens, b + cap);
      if (!has_bos && e - b < 2) break;
      out.push_back({b, e, b});
    }
  } else {
    int64_t prev_end = 0;
    for (int64_t b = 0; b < n_tokens; b += opt.stride) {
      int64_t e = std::min(n_tokens, b + cap);
      out.push_back({b, e, prev_end});
      prev_end = e;
      if (e == n_tokens) break;
    }
  }
  if (!has_bos && !out.empty()) out[0].first_scored = std::max<int64_t>(out[0].first_scored, 1);
  if (opt.max_windows > 0 && static_cast<int64_t>(out.size()) > opt.max_windows) out.resize(size_t(opt.max_windows));
  return out;
}

namespace {

// logp[v] = x[v] - logsumexp(x); returns the argmax.
int32_t log_softmax(const float* x, int n, std::vector<double>& logp) {
  logp.resize(size_t(n));
  int32_t best = 0;
  for (int i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  double m = x[best], s = 0;
  for (int i = 0; i < n; ++i) s += std::exp(double(x[i]) - m);
  double lse = m + std::log(s);
  for (int i = 0; i < n; ++i) logp[size_t(i)] = double(x[i]) - lse;
  return best;
}

}  // namespace

WindowResult score_window(LogitsSource& model, LogitsSource* ref, const TokenizerLike& tok,
                          const std::vector<int32_t>& tokens, const Window& w, int64_t block) {
  LING_CHECK(w.begin >= 0 && w.begin <= w.first_scored && w.first_scored <= w.end &&
                 w.end <= static_cast<int64_t>(tokens.size()),
             "perplexity: bad window [", w.begin, ", ", w.end, ")");
  const int v = model.vocab_size();
  if (ref) LING_CHECK(ref->vocab_size() == v, "kld: the reference has vocabulary ", ref->vocab_size(),
                      " but the model has ", v, "; the two must share a tokenizer");
  std::vector<int32_t> input;
  const auto bos = tok.bos();
  if (bos) input.push_back(*bos);
  input.insert(input.end(), tokens.begin() + w.begin, tokens.begin() + w.end);
  const int64_t offset = bos ? 1 : 0;  // input row r predicts text token begin + r + 1 - offset

  WindowResult res;
  std::vector<int32_t> scored(tokens.begin() + w.first_scored, tokens.begin() + w.end);
  res.n_bytes = static_cast<int64_t>(tok.decode(scored).size());
  model.reset();
  if (ref) ref->reset();
  std::vector<float> lm, lr;
  std::vector<double> lq, lp;
  const int64_t bs = std::max<int64_t>(1, block);
  for (int64_t r0 = 0; r0 < static_cast<int64_t>(input.size()); r0 += bs) {
    int64_t r1 = std::min<int64_t>(r0 + bs, static_cast<int64_t>(input.size()));
    std::span<const int32_t> chunk(input.data() + r0, size_t(r1 - r0));
    model.append(chunk, true, lm);
    LING_CHECK(static_cast<int64_t>(lm.size()) == (r1 - r0) * v, "perplexity: the model returned ", lm.size(),
               " logits for ", r1 - r0, " rows of ", v);
    if (ref) {
      ref->append(chunk, true, lr);
      LING_CHECK(lr.size() == lm.size(), "kld: the reference returned ", lr.size(), " logits, expected ", lm.size());
    }
    for (int64_t r = r0; r < r1; ++r) {
      int64_t t = w.begin + r + 1 - offset;  // target text token index
      if (t < w.first_scored || t >= w.end) continue;
      int32_t target = tokens[size_t(t)];
      LING_CHECK(target >= 0 && target < v, "perplexity: token id ", target, " outside the vocabulary of ", v);
      int32_t top_q = log_softmax(lm.data() + (r - r0) * v, v, lq);
      res.nll.push_back(static_cast<float>(-lq[size_t(target)]));
      if (!ref) continue;
      int32_t top_p = log_softmax(lr.data() + (r - r0) * v, v, lp);
      double kl = 0;
      for (int i = 0; i < v; ++i) {
        double p = std::exp(lp[size_t(i)]);
        if (p > 0) kl += p * (lp[size_t(i)] - lq[size_t(i)]);
      }
      res.kld.push_back(static_cast<float>(std::max(0.0, kl)));
      res.nll_ref.push_back(static_cast<float>(-lp[size_t(target)]));
      res.dp.push_back(static_cast<float>(std::exp(lq[size_t(target)]) - std::exp(lp[size_t(target)])));
      res.same_top.push_back(top_p == top_q ? 1 : 0);
    }
  }
  return res;
}

double percentile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  double pos = std::clamp(q, 0.0, 1.0) * double(values.size() - 1);
  size_t lo = static_cast<size_t>(std::floor(pos));
  size_t hi = std::min(values.size() - 1, lo + 1);
  return values[lo] + (values[hi] - values[lo]) * (pos - double(lo));
}

namespace {

struct Moments {
  double mean = 0, var = 0;  // sample variance
  int64_t n = 0;
};
Moments moments(const std::vector<double>& x) {
  Moments m;
  m.n = static_cast<int64_t>(x.size());
  if (x.empty()) return m;
  for (double v : x) m.mean += v;
  m.mean /= double(x.size());
  if (x.size() > 1) {
    for (double v : x) m.var += (v - m.mean) * (v - m.mean);
    m.var /= double(x.size() - 1);
  }
  return m;
}
double sem(const Moments& m) { return m.n > 1 ? std::sqrt(m.var / double(m.n)) : 0; }

std::vector<double> gather(const std::vector<WindowResult>& ws, std::vector<float> WindowResult::*field) {
  std::vector<double> out;
  for (const auto& w : ws) out.insert(out.end(), (w.*field).begin(), (w.*field).end());
  return out;
}

}  // namespace

std::vector<Stat> summarize_ppl(const std::vector<WindowResult>& windows) {
  std::vector<double> nll = gather(windows, &WindowResult::nll);
  LING_CHECK(!nll.empty(), "perplexity: no scored tokens");
  int64_t bytes = 0;
  for (const auto& w : windows) bytes += w.n_bytes;
  Moments m = moments(nll);
  const int64_t n = m.n;
  const double ppl = std::exp(m.mean), total = m.mean * double(n);
  std::vector<Stat> s;
  s.push_back({"ppl", ppl, ppl * sem(m), n, false});
  s.push_back({"nll_mean", m.mean, sem(m), n, false});
  if (bytes > 0) {
    s.push_back({"bits_per_byte", total / (double(bytes) * std::log(2.0)), -1, bytes, false});
    s.push_back({"byte_ppl", std::exp(total / double(bytes)), -1, bytes, false});
  }
  s.push_back({"n_tokens", double(n), -1, n, true});
  s.push_back({"n_bytes", double(bytes), -1, n, true});
  return s;
}

std::vector<Stat> summarize_kld(const std::vector<WindowResult>& windows) {
  std::vector<double> kld = gather(windows, &WindowResult::kld);
  std::vector<double> nll = gather(windows, &WindowResult::nll), nll_ref = gather(windows, &WindowResult::nll_ref);
  std::vector<double> dp = gather(windows, &WindowResult::dp);
  LING_CHECK(!kld.empty() && kld.size() == nll_ref.size(), "kld: no scored tokens");
  int64_t same = 0;
  for (const auto& w : windows)
    for (uint8_t t : w.same_top) same += t;
  const int64_t n = static_cast<int64_t>(kld.size());
  Moments mk = moments(kld), mq = moments(nll), mp = moments(nll_ref), md = moments(dp);
  std::vector<double> dlogp(kld.size());
  for (size_t i = 0; i < kld.size(); ++i) dlogp[i] = nll_ref[i] - nll[i];
  Moments ml = moments(dlogp);
  double rms = 0;
  for (double d : dp) rms += d * d;
  rms = std::sqrt(rms / double(n));
  const double top = double(same) / double(n);
  std::vector<Stat> s;
  s.push_back({"kld_mean", mk.mean, sem(mk), n, false});
  s.push_back({"kld_median", percentile(kld, 0.5), -1, n, false});
  s.push_back({"kld_p90", percentile(kld, 0.9), -1, n, false});
  s.push_back({"kld_p99", percentile(kld, 0.99), -1, n, false});
  s.push_back({"kld_p999", percentile(kld, 0.999), -1, n, false});
  s.push_back({"kld_max", percentile(kld, 1.0), -1, n, false});
  s.push_back({"kld_min", percentile(kld, 0.0), -1, n, false});
  s.push_back({"same_top_pct", 100.0 * top, 100.0 * std::sqrt(top * (1 - top) / double(n)), n, true});
  s.push_back({"dp_mean", md.mean, sem(md), n, true});
  s.push_back({"dp_rms", rms, -1, n, false});
  s.push_back({"dlogp_mean", ml.mean, sem(ml), n, true});
  s.push_back({"ppl", std::exp(mq.mean), std::exp(mq.mean) * sem(mq), n, false});
  s.push_back({"ppl_ref", std::exp(mp.mean), std::exp(mp.mean) * sem(mp), n, false});
  s.push_back({"ppl_ratio", std::exp(mq.mean - mp.mean), -1, n, false});
  s.push_back({"ln_ppl_ratio", mq.mean - mp.mean, sem(ml), n, false});
  return s;
}

std::vector<std::pair<std::string, double>> kld_histogram(const std::vector<WindowResult>& windows) {
  static const double edges[] = {0, 1e-4, 1e-3, 1e-2, 1e-1, 1, 10};
  static const char* names[] = {"[0,1e-4)", "[1e-4,1e-3)", "[1e-3,1e-2)", "[1e-2,0.1)",
                                "[0.1,1)",  "[1,10)",      "[10,inf)"};
  std::vector<double> count(7, 0);
  double n = 0;
  for (const auto& w : windows)
    for (float k : w.kld) {
      int b = 6;
      while (b > 0 && double(k) < edges[b]) --b;
      count[size_t(b)] += 1, n += 1;
    }
  std::vector<std::pair<std::string, double>> out;
  for (int b = 0; b < 7; ++b) out.emplace_back(names[b], n > 0 ? count[size_t(b)] / n : 0);
  return out;
}

}  // namespace ling::eval
