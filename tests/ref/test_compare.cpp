// The shared comparator (ling/ref/compare.h) and `ling compare`: tolerances, NaN/Inf positions, cosine distance,
// worst element, integer sets, missing tensors, and the CLI exit status.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <limits>
#include <unistd.h>

#include "ling/core/safetensors.h"
#include "ling/ref/compare.h"

namespace ling::ref {
namespace {

CompareOptions opts(double rtol, double atol, double cos = -1.0) {
  CompareOptions o;
  o.rtol = rtol;
  o.atol = atol;
  o.cos_tol = cos;
  return o;
}

TEST(Compare, ToleranceWorstElementAndCosine) {
  const std::vector<float> r = {1.0f, -2.0f, 3.0f, 4.0f, 0.0f, 6.0f};
  std::vector<float> a = r;
  a[3] = 4.01f;  // |diff| 0.01 > 1e-3 + 1e-3·4
  a[5] = 6.001f;  // |diff| 0.001 ≤ 1e-3 + 1e-3·6
  const CompareReport rep = compare_f32("t", {2, 3}, a.data(), r.data(), opts(1e-3, 1e-3));
  EXPECT_FALSE(rep.ok);
  EXPECT_EQ(rep.violations, 1);
  EXPECT_EQ(rep.worst, 3);
  EXPECT_EQ(rep.worst_at, (std::vector<int64_t>{1, 0}));
  EXPECT_NEAR(rep.max_abs, 0.01, 1e-6);
  EXPECT_NEAR(rep.max_rel, 0.01 / 4, 1e-6);
  double dot = 0, na = 0, nr = 0;
  for (size_t i = 0; i < r.size(); ++i) { dot += double(a[i]) * r[i]; na += double(a[i]) * a[i]; nr += double(r[i]) * r[i]; }
  EXPECT_NEAR(rep.cos_dist, 1.0 - 2.0 * dot / (na + nr), 1e-12);
  EXPECT_TRUE(compare_f32("t", {6}, a.data(), r.data(), opts(0, 0.02)).ok);
  EXPECT_FALSE(compare_f32("t", {6}, a.data(), r.data(), opts(0, 0.02, 1e-9)).ok);  // cosine too far
}

TEST(Compare, NanAndInfMustSitAtTheSamePositions) {
  const float nan = std::numeric_limits<float>::quiet_NaN(), inf = std::numeric_limits<float>::infinity();
  const std::vector<float> r = {1.0f, nan, inf, -inf};
  std::vector<float> a = r;
  EXPECT_TRUE(compare_f32("t", {4}, a.data(), r.data(), opts(0, 0)).ok);
  a[1] = 0.0f;
  EXPECT_FALSE(compare_f32("t", {4}, a.data(), r.data(), opts(1, 1)).ok);
  a = r;
  a[3] = inf;
  EXPECT_FALSE(compare_f32("t", {4}, a.data(), r.data(), opts(1, 1)).ok);
  a = r;
  a[0] = nan;
  EXPECT_FALSE(compare_f32("t", {4}, a.data(), r.data(), opts(1, 1)).ok);
}

TEST(Compare, IntegersExactOrAsSets) {
  const std::vector<int64_t> r = {1, 2, 3, 4, 5, 6}, a = {2, 1, 3, 4, 5, 6};
  EXPECT_FALSE(compare_i64("ids", {2, 3}, a.data(), r.data(), opts(0, 0)).ok);
  CompareOptions sets = opts(0, 0);
  sets.as_sets = true;
  EXPECT_TRUE(compare_i64("ids", {2, 3}, a.data(), r.data(), sets).ok);
  const std::vector<int64_t> b = {1, 2, 3, 4, 5, 7};
  const CompareReport rep = compare_i64("ids", {2, 3}, b.data(), r.data(), sets);
  EXPECT_FALSE(rep.ok);
  EXPECT_EQ(rep.worst_at, (std::vector<int64_t>{1, 2}));
}

TEST(Compare, FilesAndCli) {
  const auto dir = std::filesystem::temp_directory_path() / ("ling_compare_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::vector<float> x = {1, 2, 3, 4}, y = {1, 2, 3, 4.5f};
  const std::vector<int64_t> ids = {3, 1}, ids2 = {1, 3};
  write_safetensors((dir / "a.safetensors").string(),
                    {{"x", HostTensor::from_f32({2, 2}, x.data())}, {"ids", HostTensor::from_i64({1, 2}, ids.data())},
                     {"only_a", HostTensor::from_f32({1}, x.data())}});
  write_safetensors((dir / "b.safetensors").string(),
                    {{"x", HostTensor::from_f32({2, 2}, y.data())}, {"ids", HostTensor::from_i64({1, 2}, ids2.data())}});
  CompareOptions o = opts(1e-4, 1e-4);
  o.as_sets = true;
  const auto reps = compare_files((dir / "a.safetensors").string(), (dir / "b.safetensors").string(), o);
  ASSERT_EQ(reps.size(), 3u);
  for (const auto& r : reps) {
    if (r.name == "ids") {
      EXPECT_TRUE(r.ok) << r.line();
    } else if (r.name == "x") {
      EXPECT_EQ(r.violations, 1) << r.line();
    } else {
      EXPECT_NE(r.problem.find("missing"), std::string::npos) << r.line();
    }
  }
  const std::string base = std::string(LING_BINARY) + " compare " + (dir / "a.safetensors").string() + " " +
                           (dir / "b.safetensors").string() + " > /dev/null 2>&1";
  EXPECT_NE(std::system(base.c_str()), 0);
  EXPECT_NE(std::system((base + " --only ids").c_str()), 0);  // order differs, not as sets
  const std::string ok = std::string(LING_BINARY) + " compare " + (dir / "a.safetensors").string() + " " +
                         (dir / "b.safetensors").string() + " --sets --only ids > /dev/null 2>&1";
  EXPECT_EQ(std::system(ok.c_str()), 0);
  const std::string loose = std::string(LING_BINARY) + " compare " + (dir / "a.safetensors").string() + " " +
                            (dir / "b.safetensors").string() + " --only x --atol 0.6 > /dev/null 2>&1";
  EXPECT_EQ(std::system(loose.c_str()), 0);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace ling::ref
