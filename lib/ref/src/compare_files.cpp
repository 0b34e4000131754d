// Whole-file comparison of two safetensors files (compare.h): every tensor of either file, or the listed ones;
// missing tensors, shape and dtype-kind mismatches become failed reports. Kept apart from compare.cpp so that
// users of the in-memory comparator do not link the safetensors reader.
#include <cstring>
#include <set>

#include "ling/core/error.h"
#include "ling/core/safetensors.h"
#include "ling/ref/compare.h"

namespace ling::ref {

std::vector<CompareReport> compare_files(const std::string& a_path, const std::string& r_path, const CompareOptions& opt,
                                         const std::vector<std::string>& only) {
  auto fa = SafetensorsFile::open(a_path);
  auto fr = SafetensorsFile::open(r_path);
  std::set<std::string> names;
  if (!only.empty()) {
    names.insert(only.begin(), only.end());
  } else {
    for (const auto& t : fa->tensors()) names.insert(t.name);
    for (const auto& t : fr->tensors()) names.insert(t.name);
  }
  std::vector<CompareReport> out;
  for (const std::string& n : names) {
    const TensorInfo* ta = fa->find(n);
    const TensorInfo* tr = fr->find(n);
    CompareReport rep;
    rep.name = n;
    if (!ta || !tr) {
      rep.ok = false;
      rep.problem = !ta && !tr ? "missing in both files" : !ta ? "missing in " + a_path : "missing in " + r_path;
      out.push_back(rep);
      continue;
    }
    if (ta->shape != tr->shape) {
      rep.ok = false;
      rep.problem = "shape " + ta->shape_str() + " != " + tr->shape_str();
      out.push_back(rep);
      continue;
    }
    const bool fa_float = dtype_is_float(ta->dtype), fr_float = dtype_is_float(tr->dtype);
    if (fa_float != fr_float) {
      rep.ok = false;
      rep.problem = std::string("dtype ") + dtype_name(ta->dtype) + " != " + dtype_name(tr->dtype);
      out.push_back(rep);
      continue;
    }
    if (fa_float) {
      const std::vector<float> va = ta->to_f32(), vr = tr->to_f32();
      out.push_back(compare_f32(n, ta->shape, va.data(), vr.data(), opt));
    } else {
      LING_CHECK(ta->dtype == DType::I64 && tr->dtype == DType::I64, a_path, ": tensor '", n,
                 "': only I64 integer tensors can be compared (got ", dtype_name(ta->dtype), ")");
      std::vector<int64_t> va(ta->numel()), vr(tr->numel());
      std::memcpy(va.data(), ta->data, va.size() * 8);
      std::memcpy(vr.data(), tr->data, vr.size() * 8);
      out.push_back(compare_i64(n, ta->shape, va.data(), vr.data(), opt));
    }
  }
  return out;
}

}  // namespace ling::ref
