// Symmetric eigendecomposition through LAPACK dsyevd and fp64 products through dgemm (both inside OpenBLAS).
#include "ling/convert/linalg.h"

#include <algorithm>
#include <cblas.h>
#include <cmath>

#include "ling/core/error.h"

extern "C" void dsyevd_(const char* jobz, const char* uplo, const int* n, double* a, const int* lda, double* w,
                        double* work, const int* lwork, int* iwork, const int* liwork, int* info);

namespace ling::convert {

SymEig sym_eig(const MatD& a) {
  LING_CHECK(a.rows == a.cols, "sym_eig: matrix is ", a.rows, "x", a.cols, ", not square");
  const int n = int(a.rows);
  SymEig out;
  out.values.assign(size_t(n), 0.0);
  out.vectors = MatD(n, n);
  if (n == 0) return out;
  // LAPACK is column-major; a symmetric matrix is its own transpose, and the eigenvectors come back as the
  // columns of the column-major result, i.e. the rows of `w` read row-major.
  std::vector<double> w(a.v);
  std::vector<double> vals(static_cast<size_t>(n), 0.0);
  int info = 0, lwork = -1, liwork = -1, iwq = 0;
  double wq = 0;
  dsyevd_("V", "U", &n, w.data(), &n, vals.data(), &wq, &lwork, &iwq, &liwork, &info);
  LING_CHECK(info == 0, "sym_eig: dsyevd workspace query failed (info ", info, ")");
  lwork = int(wq);
  liwork = iwq;
  std::vector<double> work(size_t(std::max(1, lwork)));
  std::vector<int> iwork(size_t(std::max(1, liwork)));
  dsyevd_("V", "U", &n, w.data(), &n, vals.data(), work.data(), &lwork, iwork.data(), &liwork, &info);
  LING_CHECK(info == 0, "sym_eig: dsyevd did not converge (info ", info, ") on a ", n, "x", n, " matrix");
  // Ascending from LAPACK; reverse to descending. Column-major eigenvector j = w[j*n .. j*n+n).
  for (int j = 0; j < n; ++j) {
    const int src = n - 1 - j;
    out.values[size_t(j)] = vals[size_t(src)];
    const double* col = w.data() + size_t(src) * size_t(n);
    int64_t imax = 0;
    for (int i = 1; i < n; ++i)
      if (std::fabs(col[i]) > std::fabs(col[imax])) imax = i;
    const double sign = col[imax] < 0 ? -1.0 : 1.0;
    for (int i = 0; i < n; ++i) out.vectors(i, j) = sign * col[i];
  }
  return out;
}

MatD matmul(const MatD& a, const MatD& b) {
  LING_CHECK(a.cols == b.rows, "matmul: inner sizes ", a.cols, " and ", b.rows, " differ");
  MatD c(a.rows, b.cols);
  if (a.rows == 0 || b.cols == 0 || a.cols == 0) return c;
  cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, int(a.rows), int(b.cols), int(a.cols), 1.0, a.v.data(),
              int(a.cols), b.v.data(), int(b.cols), 0.0, c.v.data(), int(c.cols));
  return c;
}

MatD transpose(const MatD& a) {
  MatD t(a.cols, a.rows);
  for (int64_t i = 0; i < a.rows; ++i)
    for (int64_t j = 0; j < a.cols; ++j) t(j, i) = a(i, j);
  return t;
}

MatD matmul_tn(const MatD& a, const MatD& b) {
  LING_CHECK(a.rows == b.rows, "matmul_tn: inner sizes ", a.rows, " and ", b.rows, " differ");
  MatD c(a.cols, b.cols);
  if (a.cols == 0 || b.cols == 0 || a.rows == 0) return c;
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(a.cols), int(b.cols), int(a.rows), 1.0, a.v.data(),
              int(a.cols), b.v.data(), int(b.cols), 0.0, c.v.data(), int(c.cols));
  return c;
}

MatD congruence(const MatD& a, const MatD& c) { return matmul(matmul(a, c), transpose(a)); }

}  // namespace ling::convert
