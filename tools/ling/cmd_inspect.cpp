// `ling inspect PATH...`: configs and checkpoints at a glance (architecture.md §3, §5). For each model folder or
// config.json: the layer interleave, parameters (total / active / active non-embedding), KV cache bytes per
// token, Lightning state per sequence, cache memory and FLOPs per token at several contexts, and the context
// where the softmax cache overtakes the Lightning state. Several paths print a comparison table. Reads only
// config.json and safetensors headers; tensor data only with --check-weights --scan-values.
#include <cmath>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>

#include "commands.h"
#include "ling/core/error.h"
#include "ling/core/safetensors.h"
#include "ling/model/accounting.h"
#include "ling/model/config.h"
#include "ling/model/parallel.h"
#include "ling/model/schema.h"
#include "ling/core/table.h"

namespace ling {

namespace {

struct InspectOptions {
  std::vector<std::string> paths;
  std::vector<std::string> contexts{"4K", "32K", "128K", "256K"};
  int64_t batch = 1;
  std::string kv_dtype = "bf16";
  std::string state_dtype = "fp32";
  std::string decay = "hf";
  bool json = false;
  bool check_weights = false;
  int64_t tp = 0, ep = 1;          // --tp/--ep: the per-GPU layout section (0 = none)
  bool dp_attention = false;       // --dp-attention
  std::string gpu_mem = "141G";    // --gpu-mem: memory per GPU for the attention-mode choice
  std::string weight_dtype = "bf16";  // --weight-dtype: bf16|fp8 bytes per parameter for the per-GPU table
  bool scan_values = false;
};

int64_t parse_context(const std::string& s) {
  LING_CHECK(!s.empty(), "--context: empty value");
  int64_t mult = 1;
  std::string num = s;
  char last = char(std::tolower(static_cast<unsigned char>(s.back())));
  if (last == 'k') { mult = 1024; num.pop_back(); }
  if (last == 'm') { mult = 1024 * 1024; num.pop_back(); }
  size_t used = 0;
  long long v = 0;
  try { v = std::stoll(num, &used); } catch (...) { used = 0; }
  LING_CHECK(used == num.size() && v > 0, "--context: '", s, "' is not a positive token count (e.g. 4K, 32768)");
  return v * mult;
}

// "141G", "80G", "1.5T", "512M" or a plain byte count; decimal units (GPU memory is sold in GB = 1e9 B).
double parse_decimal_bytes(const std::string& s, const char* what) {
  LING_CHECK(!s.empty(), what, ": empty value");
  double mult = 1;
  std::string num = s;
  const char last = char(std::toupper(static_cast<unsigned char>(s.back())));
  if (last == 'K') mult = 1e3;
  if (last == 'M') mult = 1e6;
  if (last == 'G') mult = 1e9;
  if (last == 'T') mult = 1e12;
  if (mult > 1) num.pop_back();
  size_t used = 0;
  double v = 0;
  try { v = std::stod(num, &used); } catch (...) { used = 0; }
  LING_CHECK(used == num.size() && v > 0, what, ": '", s, "' is not a byte count (e.g. 80G, 141G)");
  return v * mult;
}

std::string human_count(double v) {
  std::ostringstream os;
  os << std::fixed;
  if (v >= 1e12) os << std::setprecision(3) << v / 1e12 << "T";
  else if (v >= 1e9) os << std::setprecision(2) << v / 1e9 << "B";
  else if (v >= 1e6) os << std::setprecision(1) << v / 1e6 << "M";
  else if (v >= 1e3) os << std::setprecision(1) << v / 1e3 << "K";
  else os << std::setprecision(0) << v;
  return os.str();
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) { b /= 1024; ++u; }
  std::ostringstream os;
  os << std::fixed << std::setprecision(u == 0 ? 0 : 2) << b << " " << units[u];
  return os.str();
}

std::string human_flops(double f) {
  std::ostringstream os;
  os << std::fixed << std::setprecision(2);
  if (f >= 1e12) os << f / 1e12 << " TFLOP";
  else if (f >= 1e9) os << f / 1e9 << " GFLOP";
  else os << f / 1e6 << " MFLOP";
  return os.str();
}

std::string context_label(int64_t c) {
  if (c % (1024 * 1024) == 0) return std::to_string(c / (1024 * 1024)) + "M";
  if (c % 1024 == 0) return std::to_string(c / 1024) + "K";
  return std::to_string(c);
}

// "LLLLLLLM ×10" or "LLLLG ×4 + GG": the shortest period that repeats at least twice, then the remainder.
std::string compress_pattern(const std::string& s) {
  const size_t n = s.size();
  for (size_t p = 1; p * 2 <= n; ++p) {
    const size_t reps = n / p;
    bool periodic = true;
    for (size_t i = 0; i < reps * p && periodic; ++i) periodic = s[i] == s[i % p];
    if (!periodic) continue;
    std::string out = s.substr(0, p) + " ×" + std::to_string(reps);
    if (reps * p < n) out += " + " + s.substr(reps * p);
    return out;
  }
  return s;
}

// Run-length form: "D×4 M×76".
std::string run_length(const std::string& s) {
  std::string out;
  for (size_t i = 0; i < s.size();) {
    size_t j = i;
    while (j < s.size() && s[j] == s[i]) ++j;
    if (!out.empty()) out += " ";
    out += std::string(1, s[i]) + "×" + std::to_string(j - i);
    i = j;
  }
  return out;
}

struct WeightProblem {
  std::string tensor, problem;
};

std::vector<WeightProblem> check_weights(const ModelConfig& c, const std::string& dir, bool scan) {
  std::vector<WeightProblem> out;
  Checkpoint ck = Checkpoint::open(dir);
  std::map<std::string, const TensorSpec*> want;
  const auto schema = tensor_schema(c, false);
  for (const auto& s : schema) want[s.name] = &s;
  std::map<std::string, bool> seen;
  for (const auto& name : ck.names()) {
    const TensorInfo& t = ck.get(name);
    auto it = want.find(name);
    if (it == want.end()) {
      bool mtp = false;  // MTP layers are allowed (not used at inference)
      for (const auto& l : c.layers)
        if (l.mtp && name.rfind("model.layers." + std::to_string(l.index) + ".", 0) == 0) mtp = true;
      if (!mtp) out.push_back({name, "unexpected tensor"});
      continue;
    }
    seen[name] = true;
    if (t.shape != it->second->shape) {
      std::ostringstream want_shape;
      want_shape << "[";
      for (size_t i = 0; i < it->second->shape.size(); ++i) want_shape << (i ? ", " : "") << it->second->shape[i];
      want_shape << "]";
      out.push_back({name, "shape " + t.shape_str() + " != expected " + want_shape.str()});
    }
    if (!dtype_is_float(t.dtype)) out.push_back({name, std::string("dtype ") + dtype_name(t.dtype) + " is not a float type"});
    if (scan && dtype_is_float(t.dtype) && t.shape == it->second->shape) {
      std::vector<float> v = t.to_f32();
      int64_t nan = 0, inf = 0;
      for (float x : v) {
        if (std::isnan(x)) ++nan;
        else if (std::isinf(x)) ++inf;
      }
      if (nan || inf) out.push_back({name, cat(nan, " NaN and ", inf, " Inf values")});
    }
  }
  for (const auto& s : schema)
    if (s.required && !seen.count(s.name)) out.push_back({s.name, "missing tensor"});
  return out;
}

int run_inspect(const InspectOptions& o) {
  LING_CHECK(!o.paths.empty(), "inspect: give at least one model folder or config.json");
  CacheDtypes dt;
  if (o.kv_dtype == "bf16") dt.kv_bytes = 2;
  else if (o.kv_dtype == "fp8") dt.kv_bytes = 1;
  else LING_THROW("--kv-dtype: '", o.kv_dtype, "' is not bf16 or fp8");
  if (o.state_dtype == "fp32") dt.state_bytes = 4;
  else if (o.state_dtype == "bf16") dt.state_bytes = 2;
  else LING_THROW("--state-dtype: '", o.state_dtype, "' is not fp32 or bf16");
  LING_CHECK(o.batch > 0, "--batch: must be positive");
  const DecayVariant decay = parse_decay_variant(o.decay);
  std::vector<int64_t> contexts;
  for (const auto& s : o.contexts) contexts.push_back(parse_context(s));

  nlohmann::ordered_json models = nlohmann::ordered_json::array();
  std::vector<ModelConfig> configs;
  bool weights_ok = true;
  for (const auto& path : o.paths) {
    ModelConfig c = load_config(path);
    c.decay = decay;
    const ParamCounts p = count_params(c);
    const LayerCounts lc = count_layers(c);
    nlohmann::ordered_json m;
    m["name"] = c.name;
    m["path"] = path;
    m["family"] = family_name(c.family);
    m["architecture"] = c.architecture;
    m["model_type"] = c.model_type;
    m["num_layers"] = c.num_hidden_layers;
    m["num_mtp_layers"] = c.num_nextn_predict_layers;
    std::string attn_map, ffn_map;
    nlohmann::ordered_json layers = nlohmann::ordered_json::array();
    for (const auto& l : c.layers) {
      if (l.mtp) continue;
      layers.push_back({{"index", l.index}, {"attention", attn_kind_name(l.attn)}, {"ffn", ffn_kind_name(l.ffn)}});
      attn_map += l.attn == AttnKind::GQA ? 'G' : l.attn == AttnKind::MLA ? 'M' : 'L';
      ffn_map += l.ffn == FfnKind::Dense ? 'D' : 'E';
    }
    m["layers"] = layers;
    m["layer_map"] = compress_pattern(attn_map);
    m["ffn_map"] = run_length(ffn_map);
    m["layer_counts"] = {{"gqa", lc.gqa}, {"mla", lc.mla}, {"lightning", lc.lightning},
                         {"dense_ffn", lc.dense_ffn}, {"moe_ffn", lc.moe_ffn}};
    m["params"] = {{"total", p.total}, {"active", p.active}, {"active_non_embedding", p.active_non_embedding},
                   {"embedding", p.embedding}, {"lm_head", p.lm_head}};
    m["kv_dtype"] = o.kv_dtype;
    m["state_dtype"] = o.state_dtype;
    m["kv_cache_bytes_per_token"] = kv_cache_bytes_per_token(c, dt);
    m["linear_state_bytes_per_sequence"] = linear_state_bytes_per_sequence(c, dt);
    m["cache_crossover_context"] = cache_crossover_context(c, dt);
    nlohmann::ordered_json mem = nlohmann::ordered_json::array(), flops = nlohmann::ordered_json::array();
    for (int64_t ctx : contexts) {
      mem.push_back({{"context", ctx}, {"batch", o.batch},
                     {"kv_cache_bytes", kv_cache_bytes_per_token(c, dt) * ctx * o.batch},
                     {"linear_state_bytes", linear_state_bytes_per_sequence(c, dt) * o.batch}});
      FlopsPerToken f = flops_per_token(c, ctx);
      flops.push_back({{"context", ctx}, {"prefill", f.prefill}, {"decode", f.decode}});
    }
    m["memory"] = mem;
    m["flops_per_token"] = flops;
    m["defaulted_keys"] = c.defaulted_keys;
    if (o.tp > 0) {
      ParallelPlan plan{o.tp, o.ep, o.dp_attention};
      const double wb = o.weight_dtype == "fp8" ? 1.0 : 2.0;
      const double gpu = parse_decimal_bytes(o.gpu_mem, "--gpu-mem");
      const RankFootprint f = rank_footprint(c, plan, dt);
      nlohmann::ordered_json per = nlohmann::ordered_json::array();
      for (int64_t ctx : contexts) {
        std::string why;
        const ParallelPlan pick = choose_attention_mode(c, plan, o.batch, ctx, gpu, wb, &why, dt);
        per.push_back({{"context", ctx}, {"batch", o.batch},
                       {"bytes_per_gpu", rank_bytes(c, plan, o.batch, ctx, wb, dt)},
                       {"picked_attention", pick.dp_attention ? "dp" : "tp"}, {"reason", why}});
      }
      m["parallel"] = {{"tp", o.tp}, {"ep", o.ep}, {"dp_attention", o.dp_attention},
                       {"weight_dtype", o.weight_dtype}, {"gpu_bytes", gpu},
                       {"params_per_gpu", f.params}, {"replicated_params", f.replicated_params},
                       {"weight_bytes_per_gpu", f.params * wb},
                       {"kv_bytes_per_token_per_gpu", f.kv_bytes_per_token},
                       {"state_bytes_per_sequence_per_gpu", f.state_bytes_per_sequence},
                       {"kv_replication", f.kv_replication}, {"ranks_per_sequence", f.ranks_per_sequence},
                       {"allreduce_bytes_per_token", f.allreduce_bytes_per_token},
                       {"alltoall_bytes_per_token", f.alltoall_bytes_per_token}, {"notes", f.notes},
                       {"memory", per}};
    }
    if (o.check_weights) {
      auto problems = check_weights(c, path, o.scan_values);
      nlohmann::ordered_json pj = nlohmann::ordered_json::array();
      for (const auto& pr : problems) pj.push_back({{"tensor", pr.tensor}, {"problem", pr.problem}});
      m["weights"] = {{"ok", problems.empty()}, {"problems", pj}};
      weights_ok = weights_ok && problems.empty();
    }
    models.push_back(m);
    configs.push_back(std::move(c));
  }

  if (o.json) {
    std::cout << nlohmann::ordered_json{{"models", models}}.dump(2) << "\n";
    return weights_ok ? 0 : 1;
  }
  for (const auto& m : models) {
    Table t({"", m["name"].get<std::string>()});
    t.row({"architecture", m["architecture"].get<std::string>() + " (" + m["model_type"].get<std::string>() + ")"});
    const auto& lc = m["layer_counts"];
    t.row({"layers", cat(m["num_layers"].get<int64_t>(), " (", lc["gqa"].get<int>(), " GQA, ", lc["mla"].get<int>(),
                         " MLA, ", lc["lightning"].get<int>(), " Lightning)",
                         m["num_mtp_layers"].get<int64_t>() ? cat(" + ", m["num_mtp_layers"].get<int64_t>(), " MTP") : "")});
    t.row({"interleave (G/M/L)", m["layer_map"].get<std::string>()});
    t.row({"ffn (D dense, E MoE)", m["ffn_map"].get<std::string>()});
    const auto& p = m["params"];
    for (const char* k : {"total", "active", "active_non_embedding"})
      t.row({cat("params ", k), cat(human_count(double(p[k].get<int64_t>())), "  (", p[k].get<int64_t>(), ")")});
    t.row({cat("KV cache / token (", o.kv_dtype, ")"),
           cat(human_bytes(double(m["kv_cache_bytes_per_token"].get<int64_t>())), "  (",
               m["kv_cache_bytes_per_token"].get<int64_t>(), " B)")});
    t.row({cat("Lightning state / seq (", o.state_dtype, ")"),
           human_bytes(double(m["linear_state_bytes_per_sequence"].get<int64_t>()))});
    if (m["cache_crossover_context"].get<int64_t>() > 0)
      t.row({"KV cache = state at", cat(m["cache_crossover_context"].get<int64_t>(), " tokens")});
    for (size_t i = 0; i < contexts.size(); ++i) {
      const auto& mem = m["memory"][i];
      const auto& fl = m["flops_per_token"][i];
      t.row({cat("cache @", context_label(contexts[i]), " x", o.batch),
             human_bytes(double(mem["kv_cache_bytes"].get<int64_t>() + mem["linear_state_bytes"].get<int64_t>()))});
      t.row({cat("FLOP/token @", context_label(contexts[i])),
             cat("prefill ", human_flops(fl["prefill"].get<double>()), ", decode ", human_flops(fl["decode"].get<double>()))});
    }
    if (!m["defaulted_keys"].empty()) {
      std::string keys;
      for (const auto& k : m["defaulted_keys"]) keys += (keys.empty() ? "" : ", ") + k.get<std::string>();
      t.row({"defaulted keys", keys});
    }
    if (m.contains("parallel")) {
      const auto& q = m["parallel"];
      const std::string tag = cat("tp", q["tp"].get<int64_t>(), " ep", q["ep"].get<int64_t>(),
                                  q["dp_attention"].get<bool>() ? " dp-attn" : "");
      t.row({cat("[", tag, "] weights / GPU (", q["weight_dtype"].get<std::string>(), ")"),
             cat(human_bytes(q["weight_bytes_per_gpu"].get<double>()), "  (",
                 human_count(q["params_per_gpu"].get<double>()), " params, ",
                 human_count(q["replicated_params"].get<double>()), " replicated)")});
      t.row({cat("[", tag, "] KV / token / GPU"),
             cat(human_bytes(q["kv_bytes_per_token_per_gpu"].get<double>()), "  (replication ",
                 q["kv_replication"].get<double>(), "x, on ", q["ranks_per_sequence"].get<int64_t>(), " GPU/seq)")});
      t.row({cat("[", tag, "] state / seq / GPU"), human_bytes(q["state_bytes_per_sequence_per_gpu"].get<double>())});
      t.row({cat("[", tag, "] comm / token / GPU"),
             cat("all-reduce ", human_bytes(q["allreduce_bytes_per_token"].get<double>()), ", all-to-all ",
                 human_bytes(q["alltoall_bytes_per_token"].get<double>()))});
      for (const auto& row : q["memory"])
        t.row({cat("[", tag, "] memory / GPU @", context_label(row["context"].get<int64_t>()), " x", o.batch),
               cat(human_bytes(row["bytes_per_gpu"].get<double>()), "; plan picks ",
                   row["picked_attention"].get<std::string>(), " attention: ", row["reason"].get<std::string>())});
      for (const auto& n : q["notes"]) t.row({cat("[", tag, "] note"), n.get<std::string>()});
    }
    if (m.contains("weights")) {
      t.row({"weights", m["weights"]["ok"].get<bool>() ? "ok" : cat(m["weights"]["problems"].size(), " problems")});
    }
    t.print(std::cout);
    if (m.contains("weights"))
      for (const auto& pr : m["weights"]["problems"])
        std::cout << "  " << pr["tensor"].get<std::string>() << ": " << pr["problem"].get<std::string>() << "\n";
    std::cout << "\n";
  }
  if (models.size() > 1) {
    std::vector<std::string> head{"model"};
    Table t({"model", "layers", "params total", "active", "active non-emb", "KV/token", "state/seq",
             cat("cache @", context_label(contexts.back()))});
    for (const auto& m : models) {
      const auto& p = m["params"];
      const auto& mem = m["memory"].back();
      t.row({m["name"].get<std::string>(), m["layer_map"].get<std::string>(),
             human_count(double(p["total"].get<int64_t>())), human_count(double(p["active"].get<int64_t>())),
             human_count(double(p["active_non_embedding"].get<int64_t>())),
             human_bytes(double(m["kv_cache_bytes_per_token"].get<int64_t>())),
             human_bytes(double(m["linear_state_bytes_per_sequence"].get<int64_t>())),
             human_bytes(double(mem["kv_cache_bytes"].get<int64_t>() + mem["linear_state_bytes"].get<int64_t>()))});
    }
    t.print(std::cout);
  }
  return weights_ok ? 0 : 1;
}

}  // namespace

Command register_inspect(CLI::App& app) {
  auto o = std::make_shared<InspectOptions>();
  Command c;
  c.app = app.add_subcommand("inspect", "Layer interleave, parameters, KV cache, state, memory and FLOPs of models");
  c.app->add_option("paths", o->paths, "Model folders or config.json files")->required();
  c.app->add_option("--context", o->contexts, "Context lengths (e.g. 4K,32K,131072)")->delimiter(',');
  c.app->add_option("--batch", o->batch, "Sequences for the memory table");
  c.app->add_option("--kv-dtype", o->kv_dtype, "KV cache dtype: bf16|fp8");
  c.app->add_option("--state-dtype", o->state_dtype, "Lightning state dtype: fp32|bf16");
  c.app->add_option("--lightning-decay", o->decay, "Lightning layer-decay variant: hf|engine|mlx");
  c.app->add_flag("--json", o->json, "One JSON object {\"models\": [...]} on stdout");
  c.app->add_option("--tp", o->tp, "Per-GPU layout over N GPUs (tensor parallelism)")->check(CLI::PositiveNumber);
  c.app->add_option("--ep", o->ep, "Expert-parallel ranks (divides --tp)")->check(CLI::PositiveNumber);
  c.app->add_flag("--dp-attention", o->dp_attention, "Replicate attention and split the batch instead of the heads");
  c.app->add_option("--gpu-mem", o->gpu_mem, "Memory per GPU for the attention-mode choice (default 141G)");
  c.app->add_option("--weight-dtype", o->weight_dtype, "Bytes per parameter of the per-GPU table: bf16 | fp8")
      ->check(CLI::IsMember({"bf16", "fp8"}));
  c.app->add_flag("--check-weights", o->check_weights, "Validate the folder's safetensors against the schema");
  c.app->add_flag("--scan-values", o->scan_values, "With --check-weights: count NaN/Inf values (reads tensor data)");
  c.run = [o](Context&) { return run_inspect(*o); };
  return c;
}

}  // namespace ling
