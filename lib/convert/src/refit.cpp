// Ridge refit of an attention output projection from streamed fp64 sums (see refit.h).
#include "ling/convert/refit.h"

#include <cblas.h>

#include <vector>

#include "ling/core/error.h"

namespace ling::convert {

void ProjectionSums::init(int64_t m, int64_t H) {
  oo = MatD(m, m);
  oy = MatD(m, H);
  yy = tokens = 0;
}

void ProjectionSums::add(const float* o, const float* y, int64_t n) {
  const int64_t m = oo.rows, H = oy.cols;
  std::vector<double> od(size_t(n * m)), yd(size_t(n * H));
  for (int64_t i = 0; i < n * m; ++i) od[size_t(i)] = o[i];
  for (int64_t i = 0; i < n * H; ++i) {
    yd[size_t(i)] = y[i];
    yy += double(y[i]) * y[i];
  }
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(m), int(m), int(n), 1.0, od.data(), int(m), od.data(),
              int(m), 1.0, oo.v.data(), int(m));
  cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, int(m), int(H), int(n), 1.0, od.data(), int(m), yd.data(),
              int(H), 1.0, oy.v.data(), int(H));
  tokens += double(n);
}

MatD ridge_projection(const ProjectionSums& s, double ridge, const float* w0) {
  LING_CHECK(s.tokens > 0, "output-projection refit: no calibration tokens were gathered");
  LING_CHECK(ridge > 0, "output-projection refit: ridge must be positive");
  const int64_t m = s.oo.rows;
  MatD c = s.oo;
  double tr = 0;
  for (int64_t i = 0; i < m; ++i) tr += c(i, i);
  const double lambda = ridge * (tr > 0 ? tr / double(m) : 1.0);
  for (int64_t i = 0; i < m; ++i) c(i, i) += lambda;
  const SymEig e = sym_eig(c);  // (A + λI)^−1 = V Λ^−1 Vᵀ
  MatD vs = e.vectors;
  for (int64_t i = 0; i < m; ++i)
    for (int64_t k = 0; k < m; ++k) vs(i, k) /= e.values[size_t(k)];
  MatD rhs = s.oy;  // Σ o yᵀ + λ·W0ᵀ
  if (w0)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t h = 0; h < rhs.cols; ++h) rhs(i, h) += lambda * double(w0[h * m + i]);
  const MatD x = matmul(vs, matmul_tn(e.vectors, rhs));  // [m, H]
  return transpose(x);
}

double projection_rel_error(const ProjectionSums& s, const float* w, int64_t H, int64_t m) {
  LING_CHECK(s.oo.rows == m && s.oy.cols == H, "output-projection refit: weight is ", H, "x", m, ", sums are ",
             s.oy.cols, "x", s.oo.rows);
  MatD W(H, m);
  for (int64_t i = 0; i < H * m; ++i) W.v[size_t(i)] = w[i];
  const MatD wa = congruence(W, s.oo);  // W A Wᵀ
  const MatD wb = matmul(W, s.oy);      // [H, H]
  double quad = 0, lin = 0;
  for (int64_t i = 0; i < H; ++i) {
    quad += wa(i, i);
    lin += wb(i, i);
  }
  return s.yy > 0 ? (s.yy - 2 * lin + quad) / s.yy : 0.0;
}

}  // namespace ling::convert

extern "C" void dposv_(const char* uplo, const int* n, const int* nrhs, double* a, const int* lda, double* b,
                       const int* ldb, int* info);

namespace ling::convert {

void KeyRefitSums::init(int64_t d_, int64_t r_) {
  d = d_; r = r_;
  G.assign(size_t(d * r * d * r), 0.0);
  b.assign(size_t(d * r), 0.0);
  rows = uu = 0;
}

void KeyRefitSums::add_row(const double* a, const double* c, const double* u, const double* p, int64_t m) {
  std::vector<double> cbar(size_t(r), 0.0), C(size_t(r * r), 0.0), g(size_t(r), 0.0), dc(size_t(r), 0.0);
  double ubar = 0, psum = 0;
  for (int64_t s = 0; s < m; ++s) {
    psum += p[s];
    ubar += p[s] * u[s];
    for (int64_t j = 0; j < r; ++j) cbar[size_t(j)] += p[s] * c[s * r + j];
  }
  if (!(psum > 0)) return;
  ubar /= psum;
  for (double& v : cbar) v /= psum;
  for (int64_t s = 0; s < m; ++s) {
    if (p[s] == 0) continue;
    for (int64_t j = 0; j < r; ++j) dc[size_t(j)] = c[s * r + j] - cbar[size_t(j)];
    const double du = u[s] - ubar;
    for (int64_t j = 0; j < r; ++j) {
      g[size_t(j)] += p[s] * dc[size_t(j)] * du;
      const double pj = p[s] * dc[size_t(j)];
      for (int64_t l = j; l < r; ++l) C[size_t(j * r + l)] += pj * dc[size_t(l)];
    }
  }
  for (int64_t j = 0; j < r; ++j)
    for (int64_t l = 0; l < j; ++l) C[size_t(j * r + l)] = C[size_t(l * r + j)];  // exactly symmetric
  for (int64_t s = 0; s < m; ++s) uu += p[s] * (u[s] - ubar) * (u[s] - ubar);
  const int64_t n = d * r;
  for (int64_t i = 0; i < d; ++i) {
    for (int64_t j = 0; j < r; ++j) b[size_t(i * r + j)] += a[i] * g[size_t(j)];
    for (int64_t k = i; k < d; ++k) {  // blocks k ≥ i only; key_refit_normal() mirrors the rest
      const double f = a[i] * a[k];
      if (f == 0) continue;
      for (int64_t j = 0; j < r; ++j) {
        double* row = G.data() + (i * r + j) * n + k * r;
        const double* cr = C.data() + j * r;
        for (int64_t l = 0; l < r; ++l) row[l] += f * cr[l];
      }
    }
  }
  rows += 1;
}

std::vector<double> key_refit_normal(const KeyRefitSums& s) {
  const int64_t n = s.d * s.r, r = s.r;
  std::vector<double> a = s.G;
  for (int64_t row = 0; row < n; ++row)
    for (int64_t col = 0; col < n; ++col)
      if (col / r < row / r) a[size_t(row * n + col)] = a[size_t(col * n + row)];
  return a;
}

double key_refit_rel_objective(const KeyRefitSums& s, const std::vector<double>& w) {
  const int64_t n = s.d * s.r;
  LING_CHECK(int64_t(w.size()) == n, "key refit: weight has ", w.size(), " values, expected ", n);
  const std::vector<double> a = key_refit_normal(s);
  double quad = 0, lin = 0;
  for (int64_t i = 0; i < n; ++i) {
    double t = 0;
    for (int64_t j = 0; j < n; ++j) t += a[size_t(i * n + j)] * w[size_t(j)];
    quad += w[size_t(i)] * t;
    lin += s.b[size_t(i)] * w[size_t(i)];
  }
  return s.uu > 0 ? (quad - 2 * lin + s.uu) / s.uu : 0.0;
}

std::vector<double> solve_key_refit(const KeyRefitSums& s, const std::vector<double>& w0, double ridge) {
  const int64_t n = s.d * s.r;
  LING_CHECK(s.rows > 0, "key refit: no calibration rows were gathered");
  LING_CHECK(int64_t(w0.size()) == n, "key refit: current weight has ", w0.size(), " values, expected ", n);
  std::vector<double> a = key_refit_normal(s), x = s.b;
  double tr = 0;
  for (int64_t i = 0; i < n; ++i) tr += a[size_t(i * n + i)];
  const double lambda = ridge * (tr > 0 ? tr / double(n) : 1.0);
  for (int64_t i = 0; i < n; ++i) {
    a[size_t(i * n + i)] += lambda;
    x[size_t(i)] += lambda * w0[size_t(i)];
  }
  const int nn = int(n), one = 1;
  int info = 0;
  dposv_("U", &nn, &one, a.data(), &nn, x.data(), &nn, &info);
  LING_CHECK(info == 0, "key refit: the normal matrix is not positive definite (dposv info ", info, ")");
  return x;
}

}  // namespace ling::convert
