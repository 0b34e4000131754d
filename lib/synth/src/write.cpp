// Writing a synthetic checkpoint folder (see synth.h): tensors from ling::tensor_schema streamed through
// SafetensorsWriter::write_streamed in blocks (memory independent of the model size; blocks generated in
// parallel with OpenMP), shards of at most shard_size bytes with model.safetensors.index.json (eval.md §7.1),
// everything inside "<out>.tmp.<pid>" renamed to <out> at the end.
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <cstdint>
#include <vector>

#include "ling/core/error.h"
#include "ling/core/log.h"
#include "ling/core/safetensors.h"
#include "ling/model/config.h"
#include "ling/model/schema.h"
#include "ling/synth/generator.h"
#include "ling/synth/synth.h"

namespace ling::synth {
namespace {

namespace fs = std::filesystem;

struct Init {
  double mean, std;
};

// Initialisation by role (fixtures/ling25-tiny/README.md step 2); `in` = shape[1] of a 2-D tensor.
Init init_for(const TensorSpec& s) {
  switch (s.role) {
    case TensorRole::Norm: return {1.0, 0.1};
    case TensorRole::RouterBias: return {0.0, 0.5};
    case TensorRole::Bias: return {0.0, 0.1};
    case TensorRole::Router:
      LING_CHECK(s.shape.size() == 2 && s.shape[1] > 0, "synth: router tensor '", s.name, "' is not 2-D");
      return {0.0, 0.5 / std::sqrt(static_cast<double>(s.shape[1]))};
    case TensorRole::Embedding:
    case TensorRole::Linear:
      LING_CHECK(s.shape.size() == 2 && s.shape[1] > 0, "synth: tensor '", s.name, "' is not 2-D");
      return {0.0, 1.0 / std::sqrt(static_cast<double>(s.shape[1]))};
  }
  LING_UNREACHABLE("tensor role of '", s.name, "'");
}

uint64_t numel(const std::vector<int64_t>& shape) {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

void write_text(const fs::path& p, const std::string& text) {
  std::ofstream f(p, std::ios::binary);
  f << text;
  f.close();
  LING_CHECK(f.good(), p.string(), ": write failed");
}

// Produce bytes [offset, offset + n) of a tensor's data in `dtype`.
void fill_bytes(const NormalStream& gen, DType dtype, std::byte* dst, size_t offset, size_t n) {
  const size_t es = dtype_size(dtype);
  const uint64_t first = offset / es, last = (offset + n + es - 1) / es;  // elements covering the range
  constexpr uint64_t kBlock = 1 << 14;
  const auto blocks = static_cast<int64_t>((last - first + kBlock - 1) / kBlock);
#pragma omp parallel for schedule(static) if (blocks > 4)
  for (int64_t b = 0; b < blocks; ++b) {
    uint64_t e0 = first + static_cast<uint64_t>(b) * kBlock, e1 = std::min(last, e0 + kBlock);
    float vals[kBlock];
    unsigned char raw[kBlock * 4];
    gen.fill(vals, e0, e1 - e0);
    convert_from_f32(dtype, vals, raw, e1 - e0);
    // Clip the element range [e0, e1) to the requested byte range.
    uint64_t byte0 = std::max<uint64_t>(e0 * es, offset), byte1 = std::min<uint64_t>(e1 * es, offset + n);
    std::memcpy(dst + (byte0 - offset), raw + (byte0 - e0 * es), byte1 - byte0);
  }
}

}  // namespace

SynthResult write_synth(const SynthOptions& o) {
  LING_CHECK(!o.out.empty(), "synth: --out is required");
  const fs::path out = fs::path(o.out).lexically_normal();
  LING_CHECK(o.force || !fs::exists(out), out.string(), ": already exists (use --force to replace it)");
  LING_CHECK(o.shard_size > 0, "synth: --shard-size must be positive");

  const std::string config_text = make_config_json(o);
  ModelConfig cfg = parse_config(config_text, (out / "config.json").string());
  const std::string torch_dtype = nlohmann::json::parse(config_text).value("torch_dtype", std::string("bfloat16"));
  const DType dtype = torch_dtype == "float32" ? DType::F32 : DType::BF16;
  const int64_t eos = cfg.eos_token_ids.empty() ? cfg.vocab_size - 1 : cfg.eos_token_ids.front();

  std::vector<TensorSpec> specs;
  for (TensorSpec& s : tensor_schema(cfg, /*include_mtp=*/true))
    if (s.required) specs.push_back(std::move(s));

  // Shard plan in schema order: a tensor larger than shard_size gets a shard of its own; the others fill the
  // open shard, and a new one is opened when the next tensor would pass shard_size.
  std::vector<std::vector<size_t>> shards;
  size_t open = SIZE_MAX;
  uint64_t shard_bytes = 0, total = 0;
  SynthResult res;
  for (size_t i = 0; i < specs.size(); ++i) {
    uint64_t nb = numel(specs[i].shape) * dtype_size(dtype);
    total += nb;
    res.parameters += static_cast<int64_t>(numel(specs[i].shape));
    if (nb > o.shard_size) {
      shards.push_back({i});
      continue;
    }
    if (open == SIZE_MAX || shard_bytes + nb > o.shard_size) {
      open = shards.size();
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards[open].push_back(i);
    shard_bytes += nb;
  }
  LING_CHECK(!shards.empty(), "synth: the schema of ", o.out, " holds no tensors");

  fs::path tmp = out;
  tmp += ".tmp." + std::to_string(::getpid());
  fs::remove_all(tmp);
  fs::create_directories(tmp);
  try {
    write_text(tmp / "config.json", config_text);
    write_text(tmp / "tokenizer.json", make_tokenizer_json(cfg.vocab_size, eos));
    write_text(tmp / "tokenizer_config.json", make_tokenizer_config_json(eos, cfg.max_position_embeddings));
    write_text(tmp / "generation_config.json", make_generation_config_json(eos));
    nlohmann::json weight_map = nlohmann::json::object();
    const size_t n_shards = shards.size();
    for (size_t k = 0; k < n_shards; ++k) {
      char name[64];
      if (n_shards == 1) std::snprintf(name, sizeof(name), "model.safetensors");
      else std::snprintf(name, sizeof(name), "model-%05zu-of-%05zu.safetensors", k + 1, n_shards);
      SafetensorsWriter w((tmp / name).string(), {{"format", "pt"}});
      for (size_t i : shards[k]) w.declare(specs[i].name, dtype, specs[i].shape);
      for (size_t i : shards[k]) {
        const TensorSpec& s = specs[i];
        Init init = init_for(s);
        NormalStream gen(s.name, o.seed, init.mean, init.std);
        w.write_streamed(s.name, [&](std::byte* dst, size_t offset, size_t n) { fill_bytes(gen, dtype, dst, offset, n); });
        weight_map[s.name] = name;
      }
      w.finish();
      log_info("synth: wrote ", name, " (", shards[k].size(), " tensors)");
    }
    if (n_shards > 1) {
      nlohmann::json index = {{"metadata", {{"total_size", total}}}, {"weight_map", weight_map}};
      write_text(tmp / "model.safetensors.index.json", index.dump(2) + "\n");
    }
    if (fs::exists(out)) {  // --force: move the old folder aside, then drop it once the new one is in place
      fs::path old = out;
      old += ".old." + std::to_string(::getpid());
      fs::rename(out, old);
      fs::rename(tmp, out);
      fs::remove_all(old);
    } else {
      fs::rename(tmp, out);
    }
    res.shards = static_cast<int>(n_shards);
  } catch (...) {
    std::error_code ec;
    fs::remove_all(tmp, ec);
    throw;
  }
  res.out = out.string();
  res.tensors = static_cast<int64_t>(specs.size());
  res.bytes = total;
  return res;
}

}  // namespace ling::synth
