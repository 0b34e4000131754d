// Engine: loads a model (config.json + safetensors) onto a Backend and runs the forward pass over batches of
// sequences of different lengths (architecture.md §2.1). Usage:
//   auto eng = Engine::open("models/ling25-tiny", EngineOptions{});
//   auto seq = eng->new_sequence();
//   std::vector<float> last = eng->prefill(*seq, prompt_ids);          // [V] logits of the last prompt token
//   std::vector<float> step = eng->decode({seq.get()}, {next_id});     // [1, V]
// Caches live in each Sequence; a Sequence belongs to the engine that created it. All logits are f32.
// An Engine runs one forward call at a time (not thread-safe); ids and positions are checked before any cache
// is touched, so a rejected call leaves every sequence unchanged.
// Errors (bad ids, prompt past max_position_embeddings, weights not matching the config) throw ling::Error.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ling/engine/backend.h"
#include "ling/engine/launch.h"
#include "ling/engine/observer.h"
#include "ling/engine/weights.h"
#include "ling/model/config.h"

namespace ling {

struct EngineOptions {
  std::string backend = "cpu";  // cpu | cuda
  BackendOptions backend_options;
  std::string decay;            // Lightning decay variant hf|engine|mlx ("" = from the config, default hf)
  int64_t tp = 1, ep = 1;       // tensor / expert parallelism (tensor_parallel.h)
  bool dp_attention = false;    // with tp > 1: attention replicated, sequences spread over the ranks
  LaunchEnv launch;             // world > 1: this process is launch.rank of a multi-process group (cuda, tp = world)
  // Longest prompt piece one forward call takes: Engine::prefill feeds longer prompts in pieces of this many
  // tokens, each continuing the caches of the previous ones (0 = the backend's limit, Backend::prefill_rows).
  int64_t prefill_chunk = 0;
};

class Sequence {
 public:
  int64_t length() const { return length_; }  // tokens consumed so far (= next position)
 private:
  friend class Engine;
  std::unique_ptr<SeqState> state_;
  int64_t length_ = 0;
};

class Engine {
 public:
  // Load config.json and the checkpoint from a model folder (or config folder + checkpoint path).
  static std::unique_ptr<Engine> open(const std::string& model_dir, const EngineOptions& options = {});
  Engine(ModelConfig config, std::shared_ptr<const ModelWeights> weights, std::unique_ptr<Backend> backend);
  // The same with the only reference to the weights handed over (Backend::load_owned): open() uses it.
  Engine(ModelConfig config, std::shared_ptr<ModelWeights> owned, std::unique_ptr<Backend> backend);

  const ModelConfig& config() const { return config_; }
  Backend& backend() { return *backend_; }
  std::unique_ptr<Sequence> new_sequence();

  // One forward call over several sequences; tokens[i] are appended to seqs[i] (each at least one token).
  // Returns logits: with all_logits every token's row (packed, sequence order), else the last row of each
  // sequence: [rows, V] row-major.
  std::vector<float> forward(const std::vector<Sequence*>& seqs, const std::vector<std::vector<int32_t>>& tokens,
                             bool all_logits, Observer* observer = nullptr);
  // Prefill one sequence: logits of every token [T, V] when all_logits, else of the last one [V]. Prompts longer
  // than prefill_chunk() run as several forward calls (not under an observer, which sees whole tensors).
  std::vector<float> prefill(Sequence& seq, const std::vector<int32_t>& tokens, bool all_logits = false,
                             Observer* observer = nullptr);
  // Tokens per prefill piece (0 = whole prompts); set_prefill_chunk(0) returns to the backend's limit.
  int64_t prefill_chunk() const;
  void set_prefill_chunk(int64_t tokens) { prefill_chunk_ = tokens; }
  // One token per sequence: [B, V].
  std::vector<float> decode(const std::vector<Sequence*>& seqs, const std::vector<int32_t>& tokens,
                            Observer* observer = nullptr);
  // A forward call that returns each sequence's next token instead of its logits: choices[i] picks for seqs[i]
  // from its last row with ref::sample's rule, advancing *rng as ref::sample would; a choice with a null rng
  // picks nothing (-1) and draws nothing. On a backend with a device sampler (Backend::pick_tokens) only the
  // ids reach the host.
  struct Choice {
    float temperature = 0.0f;  // <= 0: greedy
    int64_t top_k = 0;
    float top_p = 1.0f;
    uint64_t* rng = nullptr;
  };
  std::vector<int64_t> forward_pick(const std::vector<Sequence*>& seqs, const std::vector<std::vector<int32_t>>& tokens,
                                    const std::vector<Choice>& choices);

 private:
  Engine(ModelConfig config, std::unique_ptr<Backend> loaded);  // a backend already loaded (open(), TP)
  // forward() up to the logits, left where the backend computed them (the sequences' lengths advanced).
  Buffer forward_logits(const std::vector<Sequence*>& seqs, const std::vector<std::vector<int32_t>>& tokens,
                        bool all_logits, Observer* obs);
  // embed → layers → final norm → lm_head over buffers h, a, o [n, H] into lg [out_rows, V].
  void run_layers(const BatchPlan& plan, const std::vector<int32_t>& ids, const std::vector<int64_t>& out_rows,
                  Buffer& h, Buffer& a, Buffer& o, Buffer& lg, Observer* obs);
  // Decode steps by key (Backend::step_begin): their buffers and, from the second run on, their graph.
  struct StepEntry {
    Buffer h, a, o, lg;
    std::unique_ptr<StepGraph> graph;
    int64_t runs = 0;
  };

  ModelConfig config_;
  std::unique_ptr<Backend> backend_;  // holds what it needs of the weights
  std::map<std::vector<uint64_t>, StepEntry> steps_;
  int64_t prefill_chunk_ = 0;
};

}  // namespace ling
