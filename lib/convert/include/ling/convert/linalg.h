// Dense fp64 linear algebra for conversion: symmetric eigendecomposition (LAPACK dsyevd from OpenBLAS) and the
// few matrix products the converters need. Row-major everywhere. Sizes are calibration-statistics sized
// (at most a few thousand rows), so plain loops and one LAPACK call are enough.
#pragma once
#include <cstddef>
#include <cstdint>
#include <vector>

namespace ling::convert {

// A row-major [rows, cols] fp64 matrix.
struct MatD {
  std::vector<double> v;
  int64_t rows = 0, cols = 0;
  MatD() = default;
  MatD(int64_t r, int64_t c) : v(std::size_t(r * c), 0.0), rows(r), cols(c) {}
  double& operator()(int64_t i, int64_t j) { return v[std::size_t(i * cols + j)]; }
  double operator()(int64_t i, int64_t j) const { return v[std::size_t(i * cols + j)]; }
};

// Eigenpairs of a symmetric matrix, eigenvalues in descending order; column j of `vectors` ([n, n]) is the
// unit eigenvector of values[j]. Each eigenvector's sign is fixed so that its largest-magnitude entry is
// positive (deterministic output). Throws when LAPACK reports a failure.
struct SymEig {
  std::vector<double> values;
  MatD vectors;
};
SymEig sym_eig(const MatD& a);

MatD matmul(const MatD& a, const MatD& b);        // a·b
MatD matmul_tn(const MatD& a, const MatD& b);     // aᵀ·b
MatD transpose(const MatD& a);
// a·C·aᵀ for a symmetric C.
MatD congruence(const MatD& a, const MatD& c);

}  // namespace ling::convert
