// The CUDA backend (architecture.md §2) as one class behind the engine's Backend interface: fp32 activations on
// the device; projection weights in bf16 (cuBLASLt GEMMs, bf16 inputs, fp32 accumulation and outputs;
// kernels/gemm_lt.h) or f32 (cuBLAS sgemm, default math mode, TF32 off), chosen by BackendOptions::weight_dtype
// ("auto": as the checkpoint stores them). Norm weights, biases, the embedding and the MoE router stay f32 (the
// router's dot products always in fp32). A memory plan (weights, GEMM workspace, margin) is checked before anything
// is uploaded. Decode steps (Backend::step_begin) run without host round trips and are replayed as CUDA graphs: ids
// and positions in backend memory, caches grown ahead with doubling capacity and written at device-side positions,
// routing and routed experts on the device (kernels/moe), the absorbed MLA form (kernels/mla at the real dims),
// the Lightning decode kernel, scratch from a per-step arena. Prefill runs the chunked Lightning kernels, causal
// flash attention (MLA in the non-absorbed form) and the grouped MoE prefill.
// The methods are defined by topic: cuda_backend.cpp (set-up, weights, steps and graphs, norms, projections, LM
// head and token picks), cuda_attention.cpp (GQA and MLA), cuda_lightning.cpp (Lightning layers), cuda_ffn.cpp
// (dense and MoE FFNs). Internal to src/cuda/.
#pragma once
#include <cublas_v2.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <source_location>
#include <string>
#include <unordered_map>

#include "ling/kernels/gemm_lt.h"
#include "kernels.cuh"
#include "op_profile.h"
#include "ling/kernels/attention.h"
#include "ling/kernels/elementwise.h"
#include "ling/kernels/norm.h"
#include "ling/kernels/rope.h"
#include "ling/kernels/gemv.h"
#include "ling/kernels/launch.h"
#include "ling/kernels/lightning.h"
#include "ling/kernels/mla_decode.h"
#include "ling/kernels/moe.h"
#include "ling/kernels/moe_prefill.h"
#include "ling/kernels/prefetch.h"
#include "ling/kernels/sampling.h"
#include "model_tables.h"
#include "ling/core/dtype.h"
#include "ling/core/error.h"
#include "ling/core/log.h"
#include "ling/engine/backend.h"
#include "ling/engine/cuda_switches.h"
#include "ling/ref/ops.h"

#include "device_memory.h"
#include "side_branch.h"

namespace ling::cuda_impl {

// Rows of the caches reserved at a time beyond need (decode steps re-capture their graph when a cache moves).
inline constexpr int64_t kCacheMinRows = 64;

struct CudaLayerCache {
  DevVec k, v, latent;
  DevF state;
};
struct CudaSeqState : SeqState {
  std::vector<CudaLayerCache> layers;
  uint64_t uid = 0;  // unique per backend (never reused, unlike addresses)
  uint64_t gen = 0;  // bumped whenever one of its caches moves
};

class CudaBackend final : public Backend {
 public:
  explicit CudaBackend(const BackendOptions& o);
  ~CudaBackend() override;
  std::string name() const override { return "cuda"; }

  void load(const ModelConfig& c, std::shared_ptr<const ModelWeights> w) override;

  // Prefill activations and MoE scratch grow with the rows (about 4·(3 + 2k)·hidden bytes each): prompts run
  // in pieces of at most this many tokens.
  int64_t prefill_rows() const override { return kPrefillRows; }
  bool step_graphs() const override {
    return cfg_.num_experts == 0 || kernels::moe_route_supported(cfg_.num_experts, cfg_.num_experts_per_tok,
                                                                  cfg_.n_group, cfg_.topk_group, true);
  }
  bool graphs_enabled() const override { return opt_.cuda_graphs && !prof_.on(); }

  std::vector<uint64_t> step_begin(const std::vector<int32_t>& ids, const BatchPlan& plan) override;
  void step_end() override;
  void capture_begin() override {
    use_device();
    arena_.reset();
    LING_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    capturing_ = true;
  }
  std::unique_ptr<StepGraph> capture_end() override;
  void replay(StepGraph& graph) override {
    use_device();
    LING_CUDA_CHECK(cudaGraphLaunch(static_cast<CudaGraph&>(graph).exec, stream_));
  }

  std::unique_ptr<SeqState> new_state() override;

  Buffer alloc(int64_t rows, int64_t cols) override;
  void to_host(const Buffer& b, float* dst) override {
    use_device();
    LING_CUDA_CHECK(cudaMemcpyAsync(dst, b.data, sizeof(float) * b.rows * b.cols, cudaMemcpyDeviceToHost, stream_));
    sync();
  }

  void embed(const std::vector<int32_t>& ids, Buffer& out) override;

  void norm(NormSlot slot, int layer, const Buffer& x, Buffer& out) override {
    use_device();
    cuda::OpScope prof_scope(prof_, "norm");
    add_rms_norm(x.data, nullptr, norm_weight(slot, layer), out.data, x.rows, x.cols);
    launched();
  }

  void add_norm(Buffer& h, const Buffer& d, NormSlot slot, int layer, Buffer& out) override;

  void add(Buffer& h, const Buffer& d) override {
    use_device();
    cuda::OpScope prof_scope(prof_, "add");
    cuda::add(h.data, d.data, h.rows * h.cols, stream_);
    launched();
  }

  void attn_gqa(int layer, const Buffer& x, const BatchPlan& plan, Buffer& out) override;

  void attn_lightning(int layer, const Buffer& x, const BatchPlan& plan, Buffer& out) override;
  void attn_lightning_unnormed(int layer, const Buffer& x, const BatchPlan& plan, Buffer& y,
                               std::vector<double>& sumsq) override;
  void scale_rows(Buffer& x, const std::vector<float>& f) override;
  void add_row_vector(Buffer& x, const std::vector<float>& v) override;
  // The Lightning block; with `sumsq` the group normalisation and the output bias are left to the caller
  // (cpu_backend.cpp's twin), and the per-token sums of squares come back to the host.
  void lightning_block(int layer, const Buffer& x, const BatchPlan& plan, Buffer& out, std::vector<double>* sumsq);

  void attn_mla(int layer, const Buffer& x, const BatchPlan& plan, Buffer& out) override;

  // Floats per cached MLA row: the latent ‖ k_pe in fp32, or in bf16 two to a float (mla_paged_).
  int64_t latent_floats() const;

  // One decode step of an MLA layer on bf16 latent rows (mla_paged_): each sequence's new row (bf16) written at its
  // position, q̃ = W_UKᵀ q_nope ‖ q_pe for all rows in bf16, kernels/mla over each sequence's rows (the table of
  // step_begin; the split plan sized by the caches' capacity, fixed for a captured graph), then o = W_UV u.
  void mla_paged_step(int layer, const float* q, const float* ckv, const int64_t* pos, const BatchPlan& plan,
                      float scale, float* o);

  void dense_ffn(int layer, const Buffer& x, Buffer& out) override;

  void moe_ffn(int layer, const Buffer& x, Buffer& out, MoeTrace* trace) override;

  // bf16 prefill of an MoE layer on the device: routing (kernels/moe, the exact rule of ref::moe_route), the
  // shared expert through cuBLASLt, then the routed experts permuted by expert through grouped GEMMs
  // (kernels/moe_prefill.h). The trace, when asked for, is the device routing copied back.
  void moe_prefill(int layer, const Buffer& x, const float* dlogits, Buffer& out, MoeTrace* trace);

  void lm_head(const Buffer& x, const std::vector<int64_t>& rows, Buffer& logits) override;

  // Tokens picked on the device (kernels/sampling): only the ids come back to the host.
  bool pick_tokens(const Buffer& logits, const std::vector<TokenPick>& picks, std::vector<int64_t>& ids) override;

 private:
  // One thread may drive several CUDA backends (tensor parallelism): every entry point selects its device.
  // Every op but add_norm and moe_ffn first settles a deferred norm or residual add (settle_norms).
  void use_device() {
    LING_CUDA_CHECK(cudaSetDevice(device_));
    if (pending_norm_.h || deferred_h_) settle_norms();
  }
  // Host waits are skipped inside decode steps (they run without round trips and may be captured).
  void sync() {
    if (step_) return;
    LING_CUDA_CHECK(cudaStreamSynchronize(stream_));
    if (prof_.on()) prof_.collect();
  }
  // Scratch of n floats: from the step arena inside a decode step, else from the stream-ordered pool.
  DevF scratch(int64_t n) {
    if (!step_) return DevF(n);
    DevF d;
    d.p = arena_.get(n);
    return d;
  }
  const Mat& norm_weight(NormSlot slot, int layer) const {
    return slot == NormSlot::Final ? w_->norm
           : slot == NormSlot::Input ? w_->layers[layer].input_norm : w_->layers[layer].post_norm;
  }
  // Device address of a projection weight (bf16 or f32 copy) and whether it is bf16; null for an empty Mat.
  std::pair<const void*, bool> weight_ref(const Mat& m) const {
    if (m.empty()) return {nullptr, false};
    auto it = dev16_.find(m.data());
    if (it != dev16_.end()) return {it->second.get(), true};
    return {W(m), false};
  }
  const void* weight_ptr(const Mat& m) const { return weight_ref(m).first; }
  // After each launch: its launch error; with LING_CUDA_SYNC=1 (outside graph capture) also its completion,
  // reported with the caller's line.
  void launched(std::source_location at = std::source_location::current()) {
    LING_CUDA_CHECK(cudaGetLastError());
    if (!sw_.sync || capturing_) return;
    const cudaError_t e = cudaStreamSynchronize(stream_);
    if (e != cudaSuccess)
      LING_THROW("CUDA error in the work launched before ", at.file_name(), ":", at.line(), " (", at.function_name(),
                 "): ", cudaGetErrorString(e));
  }

  void upload(const Mat& m) {
    if (m.empty() || dev_.count(m.data())) return;
    DevF d(int64_t(m.v.size()));
    LING_CUDA_CHECK(cudaMemcpy(d.p, m.data(), sizeof(float) * m.v.size(), cudaMemcpyHostToDevice));
    dev_.emplace(m.data(), d);
  }
  // Matrices as one bf16 allocation, each one's values right after the previous one's (host f32 rounded to
  // nearest even: exact for bf16 checkpoints). The values are converted by all threads into two pinned staging
  // buffers in turn, each copied to the device while the other one fills (no pageable copies, no temporary host
  // allocation per weight); the copies are ordered on the backend's stream.
  std::shared_ptr<void> dev16(std::initializer_list<const Mat*> mats);
  // A projection weight as bf16 on the device.
  void upload16(const Mat& m) {
    if (m.empty() || dev16_.count(m.data())) return;
    dev16_.emplace(m.data(), dev16({&m}));
  }
  // Two projection weights with the same K as one bf16 allocation, b's rows right after a's (each still its own
  // entry of dev16_, b's an alias into the allocation).
  void upload16_pair(const Mat& a, const Mat& b) {
    if (dev16_.count(a.data()) || dev16_.count(b.data())) return;
    auto d = dev16({&a, &b});
    dev16_.emplace(a.data(), d);
    dev16_.emplace(b.data(), std::shared_ptr<void>(d, static_cast<uint16_t*>(d.get()) + a.v.size()));
  }
  // The device rows of a and b form one [a.rows + b.rows, K] bf16 matrix (upload16_pair): its address, else null.
  const uint16_t* stacked16(const Mat& a, const Mat& b) const {
    const auto [pa, a16] = weight_ref(a);
    const auto [pb, b16] = weight_ref(b);
    if (!a16 || !b16 || a.cols != b.cols) return nullptr;
    const uint16_t* base = static_cast<const uint16_t*>(pa);
    return base + a.v.size() == static_cast<const uint16_t*>(pb) ? base : nullptr;
  }
  // LING_CUDA_L2PF=1, decode steps of bf16 models: L2 prefetches on the side branch, each starting once the work
  // queued so far on the main stream is done (kernels/prefetch.h). None while profiling (eager, timed per op).
  bool l2pf_on() const { return sw_.l2pf && step_ && bf16_ && !prof_.on(); }
  void l2_prefetch(const kernels::L2PrefetchParams& p) {
    if (p.n == 0 && p.n_ids == 0) return;
    kernels::launch_l2_prefetch(p, side_.fork(stream_));
    launched();
  }
  // Bytes of a weight on the device (bf16 or f32 copy); 0 for an empty Mat.
  size_t weight_bytes(const Mat& m) const {
    const auto [p, is16] = weight_ref(m);
    return p ? m.v.size() * (is16 ? 2 : 4) : 0;
  }
  void add_weight(kernels::L2PrefetchParams& p, const Mat& m, size_t cap = SIZE_MAX) const {
    const auto [ptr, is16] = weight_ref(m);
    if (ptr) p.add(ptr, std::min(m.v.size() * (is16 ? 2 : 4), cap));
  }
  // While a Lightning layer's short kernels run (QK-norm + RoPE, recurrence, group norm): its output projection,
  // then its MoE router (fp32) and shared expert.
  void l2_prefetch_rest_of_layer(int layer);
  // Once the router has chosen: the down projections of the chosen experts (read after their gate/up), when they
  // fit in a third of a 50 MB L2.
  void l2_prefetch_experts(int layer, const int32_t* ids, int64_t n_ids);
  // After an MoE layer: the head of the next layer's first projection (read right after the add + norm).
  void l2_prefetch_next_layer(int layer);
  // Scratch for the bf16 copy of a GEMM's activations (grows, kept; from the arena inside a decode step).
  void* bf16_scratch(size_t n) {
    if (step_) return arena_.get(int64_t((n + 1) / 2));
    if (n > xbf_cap_) {
      xbf_ = dev_alloc(sizeof(uint16_t) * n);
      xbf_cap_ = n;
    }
    return xbf_.get();
  }
  const float* W(const Mat& m) const {
    if (m.empty()) return nullptr;
    auto it = dev_.find(m.data());
    LING_CHECK(it != dev_.end(), "internal error: a weight of ", cfg_.source, " was not uploaded");
    return it->second.p;
  }
  DevF to_dev(const std::vector<float>& v) {
    DevF d(int64_t(v.size()));
    if (!v.empty()) LING_CUDA_CHECK(cudaMemcpy(d.p, v.data(), sizeof(float) * v.size(), cudaMemcpyHostToDevice));
    return d;
  }
  // Synchronous copy of host bytes to fresh device memory (the host data may die after the call).
  std::shared_ptr<void> to_dev_raw(const void* src, size_t bytes) {
    auto d = dev_alloc(bytes);
    if (bytes) {
      LING_CUDA_CHECK(cudaMemcpyAsync(d.get(), src, bytes, cudaMemcpyHostToDevice, stream_));
      sync();
    }
    return d;
  }
  const int64_t* positions(const BatchPlan& plan) {
    if (step_) return static_cast<const int64_t*>(step_pos_.get());
    pos_ = to_dev_raw(plan.pos.data(), sizeof(int64_t) * plan.pos.size());
    return static_cast<const int64_t*>(pos_.get());
  }

  // y[M, N] = x[M, K]·Wᵀ (+ bias): column-major view y^T = W·x^T, fp32 sgemm.
  void lin(const float* x, int64_t M, int64_t K, const Mat& w, const Mat& bias, float* y, int64_t ldx = 0);

  // Causal prefill attention of T queries (positions pos0..pos0+T−1) over S cached keys through the flash
  // kernels: bf16 tensor cores for bf16 models at the dims they cover (q, k, v rounded to bf16 first), fp32
  // otherwise. Strides in floats; o fp32.
  void flash_attention(const float* q, int64_t ldq, const float* k, int64_t ldk, const float* v, int64_t ldv, float* o,
                       int64_t ldo, int64_t T, int64_t S, int64_t pos0, int64_t nh, int64_t nkv, int64_t dk, int64_t dv,
                       float scale);

  // Per-head QK-norm and NeoX RoPE of the q and k heads of a fused qkv row, one launch (head dims ≤ 1024,
  // checked at load).
  void qk_norm_rope(const LayerWeights& L, float* qkv, int64_t n, int64_t width, int64_t nq, int64_t nk,
                    const int64_t* pos);

  // d_first: a delta added before d (launch_add_rms_norm's d_first).
  void add_rms_norm(float* h, const float* d, const Mat& w, float* y, int64_t rows, int64_t dim,
                    const float* d_first = nullptr) {
    AddRmsNormParams p;
    p.h = h; p.d = d; p.w = W(w); p.y = y; p.rows = rows; p.dim = dim; p.eps = cfg_.rms_norm_eps;
    kernels::launch_add_rms_norm(p, stream_, sw_.norm_late, d_first);
  }

  // The post-attention add + norm as the head of the one-token router kernel (LING_CUDA_ROUTER_HEAD=1;
  // MoeRouterParams::head): add_norm records it (pending_norm_) where moe_ffn will take the one-launch router for
  // one token; moe_ffn hands it to the router kernel, which leaves h as it is and saves d (d_save_); the next
  // add_norm on h adds both deltas in the reference's order. Any other op first settles what is pending — the
  // norm launched as it would have been, or h += d_save — so the results are those of the eager ops, bit for bit.
  struct PendingNorm {
    float* h = nullptr;
    const float* d = nullptr;
    const Mat* w = nullptr;  // the norm weight
    float* out = nullptr;
    int64_t dim = 0;
    int layer = -1;
  };
  bool router_head_ = false;
  PendingNorm pending_norm_;
  float* deferred_h_ = nullptr;  // the residual still missing d_save_, or null
  std::shared_ptr<void> d_save_;
  bool router_head_ok(int layer, int64_t n) const;
  void settle_norms();

  // MLA latent RMSNorm in place on rows of width r at row stride ld, eps hard-wired to 1e-6 (§2.7 step 2).
  void latent_norm(float* x, const Mat& w, int64_t rows, int64_t r, int64_t ld);

  // MLA RoPE (interleaved pairs) on `heads` heads of rd values per row.
  void mla_rope(float* x, const int64_t* pos, int64_t rows, int64_t heads, int64_t row_stride, int64_t head_stride,
                int64_t rd);

  void swiglu_mlp(const float* x, int64_t n, const Mat& gate_up, const Mat& down, float* y);

  BackendOptions opt_;
  const CudaSwitches sw_ = cuda_switches_from_env();  // LING_CUDA_* (ling/engine/cuda_switches.h), read once
  int device_ = 0;
  bool bf16_ = false;
  std::unique_ptr<kernels::LtGemm> lt_;
  std::shared_ptr<void> router_counter_;  // launch_moe_router's CTA counter (zero between launches)
  std::shared_ptr<void> moe_sync_;        // launch_moe_fused's barrier counters (zero between launches)
  std::shared_ptr<void> moe_stamps_;      // LING_CUDA_MOE_STAMPS: [layers][SMs][kMoeFusedStamps] globaltimer
  void print_moe_stamps() const;
  bool moe_fused_ = false;
  static constexpr int64_t kFoldMaxGroups = 64;
  std::shared_ptr<void> fold_counters_;  // the folded output gate's per-group counters (B = 1 per launch)
  std::unordered_map<const float*, std::shared_ptr<void>> dev16_;  // bf16 projection weights
  std::shared_ptr<void> xbf_;
  size_t xbf_cap_ = 0;
  ModelConfig cfg_;
  std::shared_ptr<const ModelWeights> w_;
  ref::RopeFreqs freqs_;
  cudaStream_t stream_ = nullptr;
  cublasHandle_t blas_ = nullptr;
  std::unordered_map<const float*, DevF> dev_;  // host weight data → device copy
  std::vector<DevF> decay_;                     // [L] Lightning log decays [nh] on the device
  DevF inv_freq_;
  std::shared_ptr<void> pos_;                   // positions of the current plan
  std::shared_ptr<void> sample_ws_, pick_ids_;  // device sampler workspace and ids (pick_tokens)
  size_t sample_ws_bytes_ = 0;
  int64_t pick_ids_rows_ = 0;
  std::vector<std::shared_ptr<void>> expert_tables_;  // [L] device [2E] pointers: gate_up[e], then down[e]
  std::vector<std::shared_ptr<void>> router16_;       // [L] bf16 router copies (LING_CUDA_ROUTER_BF16) or null
  std::vector<std::vector<const void*>> expert_tables_host_;  // [L] the same addresses on the host
  std::unique_ptr<kernels::MoePrefill> moe_prefill_;   // bf16 models: routed experts of prefill calls
  // Decode steps.
  static constexpr int64_t kPrefillRows = 8192;
  static constexpr int64_t kGemvRows = kernels::kGemvMaxM;  // M up to which projections run as GEMVs (cuBLASLt beyond)
  static constexpr int kMoePrefillLanes = 4;  // side streams of the per-expert cuBLASLt path
  static constexpr size_t kBlasWorkspace = size_t(4) << 20, kStageBytes = size_t(1) << 16;
  std::shared_ptr<void> blas_ws_;
  void* stage_ = nullptr;                       // pinned staging of a step's positions and ids
  static constexpr size_t kUpStageElems = size_t(8) << 20;  // bf16 values per weight-upload staging buffer
  void* up_stage_[2] = {nullptr, nullptr};      // pinned staging of the bf16 weight uploads (dev16)
  cudaEvent_t up_done_[2] = {nullptr, nullptr}; // each buffer's last copy
  int up_next_ = 0;
  std::shared_ptr<void> step_ids_, step_pos_;   // device [step_cap_] int32 / int64
  int64_t step_cap_ = 0;
  // MLA layers at the paged kernel's dims (latent 512 + 64) of bf16 models: the latent cache holds bf16 rows
  // (2 per float of the DevVec) and decode steps run kernels/mla over each sequence's rows.
  bool mla_paged_ = false;
  std::vector<int64_t> mla_ordinal_;            // [L] index among the MLA layers, −1 for others
  int64_t mla_layers_ = 0;
  std::shared_ptr<void> mla_tab_;               // device [mla_layers_, step_cap_] row pointers of each sequence
  std::vector<const void*> mla_tab_host_;       // what mla_tab_ holds
  std::shared_ptr<void> mla_maps_;              // with mla_tma_: device [mla_layers_, step_cap_] tensor maps
  bool mla_tma_ = false;
  StepArena arena_;
  cuda::OpProfile prof_;
  bool step_ = false, capturing_ = false;
  static constexpr size_t kL2PrefetchBudget = size_t(16) << 20;  // bytes prefetched ahead at most per fork
  cuda::SideBranch side_;       // the L2 prefetches' stream
  int sms_ = 0;                                 // multiprocessors of the device
  uint64_t next_uid_ = 0;
};

}  // namespace ling::cuda_impl
