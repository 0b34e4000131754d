// NormLedger (lib/engine/src/norm_ledger.h), the CUDA backend's account of the residual add + norms that batch-1
// decode steps leave to the kernels reading their outputs: random sequences of the engine's ops replayed on host
// rows — each step the ledger returns (copy home, launch, head) performed with host arithmetic, the head exactly as
// the kernels' AddNormHead (y = RMSNorm(h_in + d) · w, h_out = h_in + d) — against the eager add + norms. Whatever
// the mix of consumers that take a head, consumers that cannot, other ops, norms without an add and two norms in a
// row: every consumer reads the eager normed row, the residual (wherever the ledger says it is) equals the eager
// one, h_in is never h_out, and after a settle the engine's buffer holds it again and nothing is owed.
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "norm_ledger.h"

namespace ling::test {
namespace {

constexpr int kDim = 8;

void rms_norm_into(const float* h, const float* w, float* y) {
  double ss = 0.0;
  for (int i = 0; i < kDim; ++i) ss += double(h[i]) * double(h[i]);
  const float inv = float(1.0 / std::sqrt(ss / kDim + 1e-6));
  for (int i = 0; i < kDim; ++i) y[i] = (h[i] * inv) * w[i];
}

// Host rows: the engine's residual h, the alternate buffer, the normed output a, two op outputs, the weights.
struct Rows {
  std::vector<float> h = std::vector<float>(kDim), alt = std::vector<float>(kDim), a = std::vector<float>(kDim);
  std::vector<float> d1 = std::vector<float>(kDim), d2 = std::vector<float>(kDim), w = std::vector<float>(kDim);
};

struct Replay {
  Rows r;
  NormLedger ledger{r.alt.data()};
  std::vector<float> ref_h = std::vector<float>(kDim), ref_a = std::vector<float>(kDim);  // the eager results
  std::mt19937 rng;
  std::uniform_real_distribution<float> u{-2.0f, 2.0f};
  explicit Replay(unsigned seed) : rng(seed) {
    for (auto* v : {&r.h, &r.d1, &r.d2}) for (float& x : *v) x = u(rng);
    for (float& x : r.w) x = 0.5f + 0.25f * u(rng);
    for (float& x : r.alt) x = NAN;  // never read before written
    ref_h = r.h;
  }
  void perform(const NormLedger::Settle& s) {
    if (s.home) std::copy(r.alt.begin(), r.alt.end(), s.home);
    if (s.launch) {  // the ordinary in-place add + norm
      if (s.launch->d)
        for (int i = 0; i < kDim; ++i) s.launch->h[i] += s.launch->d[i];
      rms_norm_into(s.launch->h, s.launch->w, s.launch->y);
    }
  }
  // The eager semantics of add_norm / norm, and the ledger's deferral of it.
  void add_norm(const std::vector<float>* d) {
    if (d)
      for (int i = 0; i < kDim; ++i) ref_h[size_t(i)] += (*d)[size_t(i)];
    rms_norm_into(ref_h.data(), r.w.data(), ref_a.data());
    perform(ledger.defer({r.h.data(), d ? d->data() : nullptr, r.w.data(), r.a.data()}));
  }
  // An op whose first kernel reads a (taking a head when it can), then writes its output d.
  int heads = 0, from_alt = 0;  // heads run, and those that read the residual from the alternate buffer
  void consumer(bool eligible, std::vector<float>& d) {
    NormLedger::Settle first;
    const auto head = ledger.take(r.a.data(), eligible, first);
    perform(first);
    if (head) {  // the head as the kernels run it
      ++heads, from_alt += head->h_in == r.alt.data();
      ASSERT_NE(head->h_in, head->h_out);
      std::vector<float> v(kDim);
      for (int i = 0; i < kDim; ++i) v[size_t(i)] = head->h_in[i] + (head->d ? head->d[i] : 0.0f);
      rms_norm_into(v.data(), head->w, head->y);
      if (head->d) {
        ASSERT_NE(head->h_out, nullptr);
        std::copy(v.begin(), v.end(), head->h_out);
      } else {
        ASSERT_EQ(head->h_out, nullptr);
      }
    }
    ASSERT_EQ(r.a, ref_a) << "the consumer read another normed row";
    for (float& x : d) x = u(rng);  // its output
  }
  // Any other entry point: everything owed first; then the residual is home.
  void other() {
    if (!ledger.idle()) perform(ledger.settle());
    ASSERT_TRUE(ledger.idle());
    ASSERT_EQ(r.h, ref_h) << "the engine's residual after a settle";
  }
};

TEST(NormLedger, RandomOpSequencesEqualTheEagerNorms) {
  int heads = 0, from_alt = 0;
  for (unsigned seed = 1; seed <= 400; ++seed) {
    Replay p(seed);
    std::bernoulli_distribution coin(0.5), rare(0.15);
    p.add_norm(nullptr);  // a step: the first norm of the embedding, then per layer two op + add + norm
    for (int op = 0; op < 40; ++op) {
      std::vector<float>& d = op % 2 ? p.r.d2 : p.r.d1;
      p.consumer(!rare(p.rng), d);
      if (::testing::Test::HasFatalFailure()) return;
      if (rare(p.rng)) p.other();
      if (::testing::Test::HasFatalFailure()) return;
      if (rare(p.rng)) p.add_norm(coin(p.rng) ? &d : nullptr);  // a norm nobody reads: launched by the next defer
      p.add_norm(&d);
    }
    p.consumer(true, p.r.d1);  // the LM head
    p.other();                 // the step's end
    if (::testing::Test::HasFatalFailure()) return;
    heads += p.heads, from_alt += p.from_alt;
  }
  EXPECT_GT(heads, 5000);     // the sequences did exercise the heads,
  EXPECT_GT(from_alt, 1000);  // both ways round
  EXPECT_GT(heads - from_alt, 1000);
}

// A residual displaced from one buffer goes home before a norm of another buffer is deferred.
TEST(NormLedger, AnotherResidualSendsTheDisplacedOneHome) {
  float h1[kDim] = {}, h2[kDim] = {}, alt[kDim] = {}, a[kDim] = {}, d[kDim] = {}, w[kDim] = {};
  NormLedger l(alt);
  EXPECT_FALSE(l.defer({h1, d, w, a}).launch);
  NormLedger::Settle first;
  const auto head = l.take(a, true, first);
  ASSERT_TRUE(head);
  EXPECT_EQ(head->h_in, h1);
  EXPECT_EQ(head->h_out, alt);  // h1 is displaced
  const NormLedger::Settle s = l.defer({h2, d, w, a});
  EXPECT_EQ(s.home, h1);
  EXPECT_FALSE(s.launch);
  const auto head2 = l.take(a, true, first);
  ASSERT_TRUE(head2);
  EXPECT_EQ(head2->h_in, h2);
  EXPECT_EQ(head2->h_out, alt);
  const NormLedger::Settle end = l.settle();
  EXPECT_EQ(end.home, h2);
  EXPECT_TRUE(l.idle());
}

}  // namespace
}  // namespace ling::test
