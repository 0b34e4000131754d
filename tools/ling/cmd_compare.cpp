// `ling compare A.safetensors B.safetensors`: tensor-by-tensor comparison (ling/ref/compare.h) of a dump A
// against a reference B: max abs/rel error, cosine distance, worst element, violation count; integer tensors
// equal (rows as sets with --sets); NaN/Inf at identical positions; missing tensors listed. Exit 1 when any
// tensor is beyond tolerance or missing.
#include <iostream>

#include "commands.h"
#include "ling/core/error.h"
#include "ling/ref/compare.h"

namespace ling {
namespace {
struct CompareCliOptions {
  std::string a, b;
  double rtol = 1e-4, atol = 1e-4, cos = -1.0;
  std::vector<std::string> only;
  bool sets = false;
};
}  // namespace

Command register_compare(CLI::App& app) {
  auto o = std::make_shared<CompareCliOptions>();
  Command c;
  c.app = app.add_subcommand("compare", "Compare two safetensors files tensor by tensor (B is the reference)");
  c.app->add_option("a", o->a, "Tested file (e.g. a `ling run --dump`)")->required();
  c.app->add_option("b", o->b, "Reference file (e.g. golden.safetensors)")->required();
  c.app->add_option("--rtol", o->rtol, "Relative tolerance (default 1e-4)");
  c.app->add_option("--atol", o->atol, "Absolute tolerance (default 1e-4)");
  c.app->add_option("--cos", o->cos, "Max cosine distance 1-2<a,b>/(|a|^2+|b|^2) (default: not checked)");
  c.app->add_option("--only", o->only, "Compare only these tensors");
  c.app->add_flag("--sets", o->sets, "Compare integer tensors row by row as sets (router ids)");
  c.record = false;
  c.run = [o](Context&) -> int {
    ref::CompareOptions co;
    co.rtol = o->rtol;
    co.atol = o->atol;
    co.cos_tol = o->cos;
    co.as_sets = o->sets;
    const auto reports = ref::compare_files(o->a, o->b, co, o->only);
    int bad = 0;
    for (const auto& r : reports) {
      std::cout << r.line() << "\n";
      bad += r.ok ? 0 : 1;
    }
    std::cout << reports.size() - bad << " of " << reports.size() << " tensors within tolerance\n";
    return bad ? 1 : 0;
  };
  return c;
}

}  // namespace ling
