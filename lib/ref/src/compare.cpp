// Tensor comparator (house-style.md §4): element tolerances, NaN/Inf positions, cosine distance, worst element,
// integer equality (optionally per row as sets), and whole-file comparison of two safetensors files.
#include "ling/ref/compare.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <cstring>
#include <sstream>

#include "ling/core/error.h"
#include "ling/core/safetensors.h"

namespace ling::ref {
namespace {
std::vector<int64_t> unravel(int64_t i, const std::vector<int64_t>& shape) {
  std::vector<int64_t> idx(shape.size());
  for (size_t d = shape.size(); d-- > 0;) {
    const int64_t s = std::max<int64_t>(shape[d], 1);
    idx[d] = i % s;
    i /= s;
  }
  return idx;
}
int64_t numel(const std::vector<int64_t>& s) {
  int64_t n = 1;
  for (int64_t d : s) n *= d;
  return n;
}
std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}
}  // namespace

std::string CompareReport::line() const {
  std::ostringstream os;
  os << (ok ? "ok   " : "FAIL ") << name;
  if (!problem.empty()) { os << ": " << problem; return os.str(); }
  os.precision(3);
  os << std::scientific;
  if (integer) {
    os << ": " << count << " ints, " << violations << " differ";
  } else {
    os << ": n=" << count << " max_abs=" << max_abs << " max_rel=" << max_rel << " cos_dist=" << cos_dist
       << " violations=" << violations;
  }
  if (worst >= 0 && (violations > 0 || !integer)) {
    os << " worst " << shape_str(worst_at) << " a=" << worst_a << " ref=" << worst_r;
  }
  return os.str();
}

CompareReport compare_f32(const std::string& name, const std::vector<int64_t>& shape, const float* a, const float* r,
                          const CompareOptions& opt) {
  CompareReport rep;
  rep.name = name;
  rep.count = numel(shape);
  double dot = 0.0, na = 0.0, nr = 0.0, worst_excess = -INFINITY;
  for (int64_t i = 0; i < rep.count; ++i) {
    const double x = a[i], y = r[i];
    bool bad = false;
    double excess = 0.0;
    if (!std::isfinite(x) || !std::isfinite(y)) {
      const bool same = (std::isnan(x) && std::isnan(y)) || x == y;
      bad = !same;
      excess = bad ? INFINITY : 0.0;
    } else {
      const double d = std::fabs(x - y);
      rep.max_abs = std::max(rep.max_abs, d);
      if (y != 0.0) rep.max_rel = std::max(rep.max_rel, d / std::fabs(y));
      else if (d > 0.0) rep.max_rel = INFINITY;
      excess = d - (opt.atol + opt.rtol * std::fabs(y));
      bad = excess > 0.0;
      dot += x * y;
      na += x * x;
      nr += y * y;
    }
    if (bad) ++rep.violations;
    if (excess > worst_excess) {
      worst_excess = excess;
      rep.worst = i;
      rep.worst_a = x;
      rep.worst_r = y;
    }
  }
  rep.cos_dist = (na + nr) > 0.0 ? 1.0 - 2.0 * dot / (na + nr) : 0.0;
  if (rep.worst >= 0) rep.worst_at = unravel(rep.worst, shape);
  rep.ok = rep.violations == 0 && (opt.cos_tol < 0.0 || rep.cos_dist <= opt.cos_tol);
  return rep;
}

CompareReport compare_i64(const std::string& name, const std::vector<int64_t>& shape, const int64_t* a,
                          const int64_t* r, const CompareOptions& opt) {
  CompareReport rep;
  rep.name = name;
  rep.integer = true;
  rep.count = numel(shape);
  const int64_t row = opt.as_sets && !shape.empty() ? std::max<int64_t>(shape.back(), 1) : 1;
  for (int64_t i0 = 0; i0 < rep.count; i0 += row) {
    if (row > 1) {
      std::multiset<int64_t> sa(a + i0, a + i0 + row), sr(r + i0, r + i0 + row);
      if (sa == sr) continue;
      for (int64_t j = 0; j < row; ++j)
        if (!sr.count(a[i0 + j])) {
          if (rep.worst < 0) { rep.worst = i0 + j; rep.worst_a = double(a[i0 + j]); rep.worst_r = double(r[i0 + j]); }
          ++rep.violations;
        }
    } else if (a[i0] != r[i0]) {
      if (rep.worst < 0) { rep.worst = i0; rep.worst_a = double(a[i0]); rep.worst_r = double(r[i0]); }
      ++rep.violations;
    }
  }
  if (rep.worst >= 0) rep.worst_at = unravel(rep.worst, shape);
  rep.ok = rep.violations == 0;
  return rep;
}

}  // namespace ling::ref
