// `ling convert IN OUT --to mla|hybrid --kv-lora-rank R [--calib CALIB]`: Ling 2.0 GQA → Ling 2.5 layout
// (lib/convert/convert.h). Prints the per-layer report as a table (or JSON), saves it as OUT/conversion.json,
// and records it in the store: per-layer metrics (bucket "layer.N") and the output folder as an artifact.
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "ling/calib/refit.h"
#include "ling/convert/convert.h"
#include "ling/core/error.h"
#include "ling/core/table.h"
#include "ling/store/store.h"

namespace ling {
namespace {

struct ConvertCliOptions {
  convert::ConvertOptions conv;
  std::string method;
  calib::RefitOptions refit;
  bool json = false;
};

std::string pct(const nlohmann::json& v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.2f%%", 100.0 * v.get<double>());
  return b;
}

int run_convert(const ConvertCliOptions& o, Context& ctx) {
  convert::ConvertOptions opt = o.conv;
  if (!o.method.empty()) opt.qk_method = convert::parse_qk_method(o.method);
  if (!o.refit.target.empty()) {
    calib::RefitOptions ro = o.refit;
    ro.source = opt.in;
    calib::check_refit_options(ro);
    opt.finish = [ro](const std::string& folder) {
      return calib::refit_converted(ro, folder, [](const std::string& line) { std::cerr << "ling: refit " << line << "\n"; });
    };
  } else {
    LING_CHECK(o.refit.data.empty(), "--refit-data is given without --refit");
  }
  nlohmann::json r = convert::convert_checkpoint(opt, [](const std::string& line) {
    if (!line.empty() && line[0] != '{') std::cerr << "ling: " << line << "\n";  // notes; the layer rows go to the table
  });
  if (o.json) {
    std::cout << r.dump(2) << "\n";
  } else {
    Table t({"layer", "kind", "qk", "RoPE energy", "latent energy", "K err", "V err", "K/V ratio"});
    for (const auto& l : r["layers"]) {
      if (l["kind"] != "mla") {
        t.row({std::to_string(l["layer"].get<int>()), l["kind"].get<std::string>(), "-", "-", "-", "-", "-", "-"});
        continue;
      }
      char ratio[32];
      std::snprintf(ratio, sizeof ratio, "%.3g", l["balance_ratio"].get<double>());
      t.row({std::to_string(l["layer"].get<int>()), "mla", l["qk_method"].get<std::string>(),
                 pct(l["rope_energy"]), pct(l["latent_energy"]), pct(l["k_rel_err"]), pct(l["v_rel_err"]), ratio});
    }
    t.print(std::cout);
    std::printf("%s: KV values per token per softmax layer %lld -> %lld; %.2f s, %.2f GB read, %.2f GB written "
                "(%.2f GB/s), peak RSS %.1f MB\n",
                opt.out.c_str(), (long long)r["kv_values_per_token_per_softmax_layer"]["before"].get<int64_t>(),
                (long long)r["kv_values_per_token_per_softmax_layer"]["after"].get<int64_t>(),
                r["seconds"].get<double>(), r["bytes_read"].get<double>() / 1e9,
                r["bytes_written"].get<double>() / 1e9, r["gb_per_s"].get<double>(),
                r["peak_rss_bytes"].get<double>() / 1e6);
  }
  if (ctx.store) {
    nlohmann::json settings = r;
    settings.erase("layers");
    ctx.store->set_run_settings(ctx.run_id, settings.dump());
    for (const auto& l : r["layers"]) {
      if (l["kind"] != "mla") continue;
      for (const char* k : {"rope_energy", "latent_energy", "k_rel_err", "v_rel_err", "balance_ratio"}) {
        MetricRow m;
        m.run_id = ctx.run_id;
        m.name = k;
        m.bucket = "layer." + std::to_string(l["layer"].get<int>());
        m.value = l[k].get<double>();
        m.n = 1;
        m.higher_is_better = std::string(k).find("energy") != std::string::npos;
        m.aggregation = "value";
        ctx.store->add_metric(m);
      }
    }
    ctx.store->add_artifact(ctx.run_id, "checkpoint", std::filesystem::absolute(opt.out).string(), "",
                            int64_t(r["bytes_written"].get<double>()));
  }
  return 0;
}

}  // namespace

Command register_convert(CLI::App& app) {
  auto o = std::make_shared<ConvertCliOptions>();
  Command c;
  c.app = app.add_subcommand("convert", "Convert a Ling 2.0 GQA checkpoint to the Ling 2.5 layout (MLA / hybrid)");
  c.app->add_option("in", o->conv.in, "Source model folder (BailingMoeV2)")->required();
  c.app->add_option("out", o->conv.out, "Output folder (written atomically)")->required();
  c.app->add_option("--to", o->conv.to, "mla (every layer MLA) | hybrid (Lightning + MLA)")
      ->check(CLI::IsMember({"mla", "hybrid"}))->capture_default_str();
  c.app->add_option("--kv-lora-rank", o->conv.kv_lora_rank, "MLA latent rank r_kv")->required();
  c.app->add_option("--q-lora-rank", o->conv.q_lora_rank, "q LoRA rank (0 = q_proj, default)");
  c.app->add_option("--layer-group-size", o->conv.layer_group_size, "hybrid: every G-th layer MLA (default 8)");
  c.app->add_option("--group-norm-size", o->conv.group_norm_size, "hybrid: Lightning GroupRMSNorm groups (0 = auto)");
  c.app->add_option("--calib", o->conv.calib, "Calibration file of 'ling calibrate' (omit: data-free, weights only)");
  c.app->add_option("--qk-method", o->method, "ant | inv-rms | vec-mse | logit | kl | lsq (default: the calibration's)");
  c.app->add_option("--balance-kv-ratio", o->conv.balance_kv_ratio, "Extra K/V balance factor (default 1)");
  c.app->add_flag("--force", o->conv.force, "Replace an existing output folder");
  c.app->add_flag("--plain-pca", o->conv.plain_pca,
                  "TransMLA's plain balanced K/V PCA instead of the query/output-weighted PCA");
  c.app->add_option_function<std::string>(
         "--latent-norm", [o](const std::string& v) { o->conv.linear_latent_norm = v == "linear"; },
         "kv_a_layernorm / q_a_layernorm: rms (gain E[rms], each token divided by its RMS) | linear (eps-dominated, "
         "the norm is a constant factor)")
      ->check(CLI::IsMember({"rms", "linear"}));
  c.app->add_flag("--no-expected-rotation", o->conv.no_expected_rotation,
                  "Keep the rotated NoPE residue as plain NoPE (TransMLA) instead of folding its expected rotation");
  o->refit.target.clear();
  c.app->add_option("--refit", o->refit.target,
                    "Sequential data refit of the MLA layers: a '+'-list of inputs, keys, dense | dense-residual, "
                    "in that order, e.g. dense-residual (needs --refit-data)");
  c.app->add_option("--refit-data", o->refit.data, "Calibration text for --refit (training text)");
  c.app->add_option("--refit-tokens", o->refit.tokens, "Tokens of --refit-data used (default 16384)");
  c.app->add_option("--refit-seq-len", o->refit.seq_len, "Window length of the refit passes (default 512)");
  c.app->add_option("--refit-ridge", o->refit.ridge, "Ridge of the refits toward the converted weights, relative to the mean diagonal (default 1)");
  c.app->add_option("--refit-rows", o->refit.rows, "keys, temperature: query rows sampled per window (default 64)");
  c.app->add_flag("--json", o->json, "Print the report as JSON");
  c.run = [o](Context& ctx) -> int { return run_convert(*o, ctx); };
  return c;
}

}  // namespace ling
