// Test helpers over the shared comparator (ling/ref/compare.h, house-style.md §4): gtest assertions that print
// the one-line report (violations, worst element and value pair) on failure. Header-only: test suites that use
// it link ling_ref (directly or through ling_engine).
#pragma once
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "ling/ref/compare.h"

namespace ling::test {

inline ref::CompareOptions tol(double rtol, double atol, double cos_tol = -1.0, bool as_sets = false) {
  ref::CompareOptions o;
  o.rtol = rtol;
  o.atol = atol;
  o.cos_tol = cos_tol;
  o.as_sets = as_sets;
  return o;
}

inline ::testing::AssertionResult all_close(const std::string& name, const std::vector<float>& a,
                                            const std::vector<float>& r, const ref::CompareOptions& opt) {
  if (a.size() != r.size())
    return ::testing::AssertionFailure() << name << ": " << a.size() << " values vs " << r.size() << " in the reference";
  const ref::CompareReport rep = ref::compare_f32(name, {int64_t(a.size())}, a.data(), r.data(), opt);
  if (rep.ok) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << rep.line();
}

inline ::testing::AssertionResult all_close(const std::string& name, const std::vector<int64_t>& shape, const float* a,
                                            const float* r, const ref::CompareOptions& opt) {
  const ref::CompareReport rep = ref::compare_f32(name, shape, a, r, opt);
  if (rep.ok) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << rep.line();
}

inline ::testing::AssertionResult all_equal(const std::string& name, const std::vector<int64_t>& shape,
                                            const int64_t* a, const int64_t* r, bool as_sets = false) {
  const ref::CompareReport rep = ref::compare_i64(name, shape, a, r, tol(0, 0, -1, as_sets));
  if (rep.ok) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << rep.line();
}

}  // namespace ling::test
