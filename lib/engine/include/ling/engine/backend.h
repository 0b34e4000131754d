// Backend: the coarse compute interface the forward pass is written against (house-style.md §3.3). One entry per
// block-level op; the layer loop, residuals and cache bookkeeping live in Engine (engine.h) and are written
// once. A backend owns its weights (uploaded from ModelWeights), its activation buffers (Buffer: backend
// memory, host for CPU, device for CUDA) and the per-sequence caches (SeqState). It may fuse freely inside a
// block: tests compare at block boundaries.
#pragma once
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "ling/engine/weights.h"
#include "ling/model/config.h"

namespace ling {

// A [rows, cols] f32 activation in backend memory.
struct Buffer {
  float* data = nullptr;
  int64_t rows = 0, cols = 0;
  std::shared_ptr<void> owner;
};

// Caches of one sequence, created by the backend: per layer a GQA KV cache [t, nkv·hd] ×2, an MLA latent cache
// [t, r_kv + d_rope] (c after kv_a_layernorm ‖ k_pe after RoPE), or a Lightning fp32 state [nh, hd, hd].
class SeqState {
 public:
  virtual ~SeqState() = default;
};

// Rows [row0, row0 + count) of the packed batch belong to one sequence, at positions pos0 .. pos0 + count − 1.
struct SeqSlice {
  SeqState* state = nullptr;
  int64_t row0 = 0, count = 0, pos0 = 0;
};
struct BatchPlan {
  std::vector<SeqSlice> seqs;
  std::vector<int64_t> pos;  // [n] absolute position of each packed row
  int64_t rows() const { return int64_t(pos.size()); }
};

enum class NormSlot { Input, PostAttention, Final };

// Host copy of the router decisions of one MoE call ([n, k] each), filled when requested.
struct MoeTrace {
  std::vector<int64_t> ids;
  std::vector<float> weights;
};

struct BackendOptions {
  int threads = 0;              // 0 = library default
  int64_t lightning_chunk = 64; // chunk size of the Lightning prefill (the recurrent form is used for 1 token)
  bool mla_absorbed_decode = true;  // single-token MLA steps use the absorbed form over the latent cache
  // false: skip kv_a_layernorm / q_a_layernorm (CPU backend only). The format always applies them; the switch
  // exists so that conversion tests can check the linear part of a GQA→MLA conversion for exactness.
  bool mla_latent_norm = true;
  // CUDA backend: dtype of the projection weights on the device. "auto": bf16 when the checkpoint stores its
  // projections in bf16/f16/fp8, f32 when it stores f32. bf16 runs cuBLASLt GEMMs with bf16 inputs and fp32
  // accumulation/outputs; the MoE router GEMM always stays fp32.
  std::string weight_dtype = "auto";
  // Tensor parallelism: this backend holds heads [head_offset, head_offset + num_attention_heads) of a model
  // with total_heads heads (0 = not sharded); Lightning decays follow the global head index.
  int64_t head_offset = 0;
  int64_t total_heads = 0;
  int device = 0;               // CUDA device ordinal
  bool cuda_graphs = true;      // CUDA backend: replay decode steps as CUDA graphs (false: run them eagerly)
};

// One row's token choice (ref::sample_with_draw): temperature <= 0 is greedy; draw = ref::sample_draw's value.
struct TokenPick {
  float temperature = 0.0f;
  int64_t top_k = 0;
  float top_p = 1.0f;
  uint64_t draw = 0;
};

// A recorded decode step that the backend can replay (see Backend::step_begin).
struct StepGraph {
  virtual ~StepGraph() = default;
};

class Backend {
 public:
  virtual ~Backend() = default;
  virtual std::string name() const = 0;
  // Take the weights (a backend may keep the host copy or upload it and drop nothing else).
  virtual void load(const ModelConfig& config, std::shared_ptr<const ModelWeights> weights) = 0;
  // load() for a caller that hands over its only reference: a backend may take the weights apart while it
  // loads (the tensor-parallel backend frees each full layer once its ranks have their slices). Default: load().
  virtual void load_owned(const ModelConfig& config, std::shared_ptr<ModelWeights> weights) {
    load(config, std::move(weights));
  }
  virtual std::unique_ptr<SeqState> new_state() = 0;

  virtual Buffer alloc(int64_t rows, int64_t cols) = 0;
  virtual void to_host(const Buffer& b, float* dst) = 0;  // rows·cols values

  virtual void embed(const std::vector<int32_t>& ids, Buffer& out) = 0;      // out [n, H]
  virtual void norm(NormSlot slot, int layer, const Buffer& x, Buffer& out) = 0;  // RMSNorm, out may alias x
  virtual void add(Buffer& h, const Buffer& d) = 0;                          // h += d
  // h += d, then out = RMSNorm_slot(h) (the residual add fused with the next norm; default: add then norm).
  virtual void add_norm(Buffer& h, const Buffer& d, NormSlot slot, int layer, Buffer& out) {
    add(h, d);
    norm(slot, layer, h, out);
  }
  // Attention blocks: x = normalised input [n, H], out = block output [n, H] (before the residual add).
  // They append to the caches of plan.seqs and attend over cache + new rows.
  virtual void attn_gqa(int layer, const Buffer& x, const BatchPlan& plan, Buffer& out) = 0;
  virtual void attn_lightning(int layer, const Buffer& x, const BatchPlan& plan, Buffer& out) = 0;
  virtual void attn_mla(int layer, const Buffer& x, const BatchPlan& plan, Buffer& out) = 0;
  // Tensor parallelism whose Lightning GroupRMSNorm groups span ranks (tensor_parallel.h): the Lightning block
  // without the group normalisation and without the output bias, y = dense(g_norm ⊙ o ⊙ sigmoid(g_proj x)),
  // plus sumsq[t] = Σ o[t, c]² over this backend's channels (all of one group). Optional (default: throws).
  virtual void attn_lightning_unnormed(int layer, const Buffer& x, const BatchPlan& plan, Buffer& y,
                                       std::vector<double>& sumsq);
  // Row-wise helpers of that path: x[t, :] *= f[t]; x[t, :] += v (v has x.cols values). The defaults work on host
  // buffers (CPU); device backends override them.
  virtual void scale_rows(Buffer& x, const std::vector<float>& f);
  virtual void add_row_vector(Buffer& x, const std::vector<float>& v);
  virtual void dense_ffn(int layer, const Buffer& x, Buffer& out) = 0;
  virtual void moe_ffn(int layer, const Buffer& x, Buffer& out, MoeTrace* trace) = 0;
  // logits [rows.size(), V] (f32) for the listed rows of x.
  virtual void lm_head(const Buffer& x, const std::vector<int64_t>& rows, Buffer& logits) = 0;
  // Token choice where the logits are (optional; the CUDA backend): ids[r] = ref::sample_with_draw(row r, picks[r])
  // for every row of logits. Returns false without a device sampler: the engine then copies the logits to the
  // host and picks there.
  virtual bool pick_tokens(const Buffer& logits, const std::vector<TokenPick>& picks, std::vector<int64_t>& ids) {
    (void)logits, (void)picks, (void)ids;
    return false;
  }

  // Decode steps without host round trips (optional; the CUDA backend). For a forward call in which every
  // sequence gets one token and nothing is observed, Engine calls step_begin, which uploads the token ids and
  // positions to backend-owned memory and grows the caches ahead of the step (outside any graph), and returns
  // a key that changes whenever an address the step's ops use changes (another batch composition, a cache that
  // was reallocated). Between step_begin and step_end every op reads ids and positions from that memory,
  // allocates only from a per-step arena and never synchronises, so the ops can be captured once
  // (capture_begin/capture_end) and replayed for every later step with the same key.
  // Rows one prefill call should take at most (0 = no limit): activations and scratch grow with the rows, so
  // long prompts are fed in pieces (Engine::prefill).
  virtual int64_t prefill_rows() const { return 0; }
  virtual bool step_graphs() const { return false; }
  virtual std::vector<uint64_t> step_begin(const std::vector<int32_t>& ids, const BatchPlan& plan);
  virtual void step_end() {}
  virtual bool graphs_enabled() const { return false; }
  virtual void capture_begin() {}
  virtual std::unique_ptr<StepGraph> capture_end() { return nullptr; }
  virtual void replay(StepGraph& graph) { (void)graph; }
};

// The CPU backend on ling_ref (OpenBLAS + OpenMP).
std::unique_ptr<Backend> make_cpu_backend(const BackendOptions& options);
// The CUDA backend (src/cuda/, builds with LING_CUDA): throws "no CUDA device ..." when none is present.
std::unique_ptr<Backend> make_cuda_backend(const BackendOptions& options);
// CUDA devices visible to this process (0 without a device or without CUDA in the build).
int cuda_device_count();

}  // namespace ling
