// `ling calibrate MODEL --data FILE --tokens N --out CALIB.safetensors`: gather the statistics of conversion.md
// §7 steps 1–2 through the engine (calib/calibrate.h) and write them atomically. The run is recorded with its
// settings, the calibration file as an artifact, and the token count as a metric.
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "ling/calib/calibrate.h"
#include "ling/core/error.h"
#include "ling/core/hash.h"
#include "ling/store/store.h"

namespace ling {
namespace {

struct CalibrateCliOptions {
  calib::CalibOptions calib;
  std::string method = "kl";
  std::string out;
  bool no_q_cov = false;
};

int run_calibrate(const CalibrateCliOptions& o, Context& ctx) {
  calib::CalibOptions opt = o.calib;
  opt.method = convert::parse_qk_method(o.method);
  opt.q_cov = !o.no_q_cov;
  LING_CHECK(!o.out.empty(), "--out: missing calibration file path");
  const auto parent = std::filesystem::absolute(o.out).parent_path();
  LING_CHECK(std::filesystem::is_directory(parent), o.out, ": parent folder does not exist");
  convert::Calibration cal = calib::calibrate(opt, [](const std::string& s) { std::cerr << s << "\n"; });
  convert::save_calibration(o.out, cal);
  const auto bytes = int64_t(std::filesystem::file_size(o.out));
  std::cout << o.out << ": " << cal.layers.size() << " layers, " << opt.tokens << " tokens, QK fusion for pass 2: "
            << o.method << ", " << bytes / 1e6 << " MB\n";
  if (ctx.store) {
    ctx.store->set_run_settings(ctx.run_id, nlohmann::json{{"model", opt.model}, {"data", opt.data},
                                                           {"tokens", opt.tokens}, {"seq_len", opt.seq_len},
                                                           {"qk_method", o.method}, {"backend", opt.backend},
                                                           {"q_cov", opt.q_cov}}.dump());
    ctx.store->add_artifact(ctx.run_id, "calibration", std::filesystem::absolute(o.out).string(), sha256_file(o.out),
                            bytes);
    MetricRow m;
    m.run_id = ctx.run_id;
    m.name = "calibration_tokens";
    m.value = double(opt.tokens);
    m.n = int64_t(cal.layers.size());
    ctx.store->add_metric(m);
  }
  return 0;
}

}  // namespace

Command register_calibrate(CLI::App& app) {
  auto o = std::make_shared<CalibrateCliOptions>();
  Command c;
  c.app = app.add_subcommand("calibrate", "Gather QK-norm and K/V statistics of a GQA model for 'ling convert'");
  c.app->add_option("model", o->calib.model, "Model folder (Ling 2.0 GQA)")->required();
  c.app->add_option("--data", o->calib.data, "Calibration text (UTF-8), tokenised with the model's tokenizer")
      ->required();
  c.app->add_option("--tokens", o->calib.tokens, "Calibration tokens, from the start of --data (default 32768)")
      ->check(CLI::PositiveNumber);
  c.app->add_option("--seq-len", o->calib.seq_len, "Window length (default 512)")->check(CLI::PositiveNumber);
  c.app->add_option("--out", o->out, "Calibration file to write (.safetensors)")->required();
  c.app->add_option("--qk-method", o->method, "QK-norm fusion of the pass-2 model: ant | inv-rms | vec-mse | logit | kl | lsq")
      ->capture_default_str();
  c.app->add_option("--backend", o->calib.backend, "Engine that produces the layer inputs: cpu | cuda");
  c.app->add_option("--threads", o->calib.threads, "CPU threads (0 = all)");
  c.app->add_option("--logit-rows", o->calib.logit_rows, "Query rows per window for the logit/KL statistics (128)");
  c.app->add_flag("--no-q-cov", o->no_q_cov, "Skip the query covariance (then convert cannot build a q LoRA)");
  c.run = [o](Context& ctx) -> int { return run_calibrate(*o, ctx); };
  return c;
}

}  // namespace ling
