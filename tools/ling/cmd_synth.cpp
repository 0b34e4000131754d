// `ling synth`: write a random-weight checkpoint in the real Hugging Face layout (config.json, model.safetensors
// or shards + index, tokenizer.json, tokenizer_config.json, generation_config.json). The work is in lib/synth;
// this file binds the options and prints one summary line (or JSON with --json).
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "ling/core/error.h"
#include "ling/synth/synth.h"

namespace ling {
namespace {

struct SynthCliOptions {
  synth::SynthOptions synth;
  std::string shard_size = "2G";  // --shard-size
  bool json = false;              // --json
};

int run_synth(const SynthCliOptions& o) {
  synth::SynthOptions opts = o.synth;
  opts.shard_size = synth::parse_size(o.shard_size, "--shard-size");
  synth::SynthResult r = synth::write_synth(opts);
  if (o.json) {
    std::cout << nlohmann::json({{"out", r.out}, {"tensors", r.tensors}, {"parameters", r.parameters},
                                 {"bytes", r.bytes}, {"shards", r.shards}})
                     .dump()
              << "\n";
  } else {
    std::printf("%s: %lld tensors, %lld parameters, %.1f MB in %d shard%s\n", r.out.c_str(),
                static_cast<long long>(r.tensors), static_cast<long long>(r.parameters), r.bytes / 1e6, r.shards,
                r.shards == 1 ? "" : "s");
  }
  return 0;
}

}  // namespace

Command register_synth(CLI::App& app) {
  auto o = std::make_shared<SynthCliOptions>();
  Command c;
  c.app = app.add_subcommand("synth", "Write a random-weight checkpoint (HF layout) for a Ling 2.x family");
  c.app->add_option("--family", o->synth.family, "ling-2.0 | ring-linear | ling-2.5 (optional with a config path)")
      ->check(CLI::IsMember({"ling-2.0", "ring-linear", "ling-2.5"}));
  c.app->add_option("--preset", o->synth.preset, "tiny | small | path of a config.json (default tiny)");
  c.app->add_option("--seed", o->synth.seed, "Generator seed (default 1234)");
  c.app->add_option("--dtype", o->synth.dtype, "f32 | bf16 (default: the config's torch_dtype; tiny f32, small bf16)")
      ->check(CLI::IsMember({"f32", "bf16"}));
  c.app->add_option("--out", o->synth.out, "Output folder (created atomically)")->required();
  c.app->add_option("--layers", o->synth.layers, "Override num_hidden_layers")->check(CLI::PositiveNumber);
  c.app->add_option("--experts", o->synth.experts, "Override num_experts (top-k and groups adjusted)")
      ->check(CLI::PositiveNumber);
  c.app->add_option("--vocab", o->synth.vocab, "Override vocab_size")->check(CLI::PositiveNumber);
  c.app->add_option("--shard-size", o->shard_size, "Largest shard (bytes, or K/M/G; default 2G)");
  c.app->add_flag("--force", o->synth.force, "Replace an existing output folder");
  c.app->add_flag("--json", o->json, "Print a JSON summary");
  c.run = [o](Context&) -> int { return run_synth(*o); };
  return c;
}

}  // namespace ling
