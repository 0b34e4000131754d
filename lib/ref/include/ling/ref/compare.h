// Tensor comparator (house-style.md §4), shared by `ling compare` and the tests (tests/common/compare.h).
// Floats: per element |a − r| ≤ atol + rtol·|r| (r = the reference, the second argument), NaN/±Inf only at
// identical positions, global cosine distance 1 − 2⟨a,r⟩/(‖a‖² + ‖r‖²) ≤ cos_tol (sums in fp64). Integers:
// equal element by element, or, with as_sets, each row (last dimension) equal as a set. Never passes on a
// fraction of the elements; a failed report names the count of violations and the worst element.
#pragma once
#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace ling::ref {

struct CompareOptions {
  double rtol = 1e-5, atol = 1e-6;
  double cos_tol = 1e-10;  // negative: do not check the cosine distance
  bool as_sets = false;    // integer tensors: compare rows (last dim) as sets
};

struct CompareReport {
  std::string name;
  bool ok = true;
  bool integer = false;
  int64_t count = 0, violations = 0;
  double max_abs = 0.0, max_rel = 0.0, cos_dist = 0.0;
  int64_t worst = -1;             // flat index of the worst element (largest excess over the tolerance)
  std::vector<int64_t> worst_at;  // its multi-index
  double worst_a = 0.0, worst_r = 0.0;
  std::string problem;            // shape/dtype mismatch or missing tensor; empty otherwise
  std::string line() const;       // one human-readable line
};

CompareReport compare_f32(const std::string& name, const std::vector<int64_t>& shape, const float* a,
                          const float* r, const CompareOptions& opt);
CompareReport compare_i64(const std::string& name, const std::vector<int64_t>& shape, const int64_t* a,
                          const int64_t* r, const CompareOptions& opt);

// Compare every tensor present in either file (or only `only`, when not empty). Tensors missing on one side
// become failed reports with `problem` set. Float tensors of any float dtype are compared in f32.
std::vector<CompareReport> compare_files(const std::string& a_path, const std::string& r_path, const CompareOptions& opt,
                                         const std::vector<std::string>& only = {});

}  // namespace ling::ref
