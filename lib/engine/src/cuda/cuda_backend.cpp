// CUDA backend (architecture.md §2): fp32 activations on the device; projection weights in bf16 (cuBLASLt GEMMs,
// bf16 inputs, fp32 accumulation and outputs; kernels/gemm_lt.h) or in f32 (cuBLAS sgemm, default math mode, TF32 off),
// chosen by BackendOptions::weight_dtype ("auto": as the checkpoint stores them). Norm weights, biases, the
// embedding and the MoE router stay f32 (the router GEMM always runs in fp32). Simple kernels (kernels.cu) for
// norms, RoPE, attention, Lightning and the MoE combine; the router runs ref::moe_route on the host copy of the
// fp32 router logits (same tie rule as the CPU backend). A memory plan (weights, GEMM workspace, margin) is
// checked before anything is uploaded. Decode steps (Backend::step_begin) run without host round trips and are
// replayed as CUDA graphs: ids and positions in backend memory, caches grown ahead with doubling capacity and
// written at device-side positions, routing and routed experts on the device (kernels/moe), the absorbed
// MLA form, scratch from a per-step arena. Prefill runs the Lightning chunked form (lightning_chunked.cu).
// Limits: prefill uses the non-absorbed MLA form and naive attention; its scratch comes from the device's
// stream-ordered memory pool.
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
#include "ling/ref/ops.h"

#include "device_memory.h"
#include "env_flag.h"
#include "side_branch.h"

namespace ling {
namespace {

// Rows of the caches reserved at a time beyond need (decode steps re-capture their graph when a cache moves).
constexpr int64_t kCacheMinRows = 64;

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
  explicit CudaBackend(const BackendOptions& o) : opt_(o) {
    int n = 0;
    const cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess || n == 0)
      LING_THROW("no CUDA device (cudaGetDeviceCount: ", e == cudaSuccess ? "0 devices" : cudaGetErrorString(e), ")");
    LING_CHECK(o.device >= 0 && o.device < n, "cuda: device ", o.device, " requested but ", n, " present");
    device_ = o.device;
    LING_CUDA_CHECK(cudaSetDevice(device_));
    // Keep freed memory in the device pool instead of returning it to the driver at every synchronisation.
    cudaMemPool_t pool = nullptr;
    LING_CUDA_CHECK(cudaDeviceGetDefaultMemPool(&pool, device_));
    uint64_t keep = UINT64_MAX;
    LING_CUDA_CHECK(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &keep));
    LING_CUDA_CHECK(cudaStreamCreate(&stream_));
    // Decode-path kernels launch with programmatic dependent launch (kernels/launch.h), each scheduled while its
    // predecessor finishes (same results; on by default: measured faster end to end; LING_CUDA_PDL=0 turns it off).
    kernels::set_programmatic_launch(cuda::env_flag("LING_CUDA_PDL", true));
    // LING_CUDA_SYNC=1 (debugging): every launch is followed by a synchronisation, so an asynchronous fault is
    // reported at the launch that caused it instead of at a later call.
    sync_launches_ = cuda::env_flag("LING_CUDA_SYNC");
    // LING_CUDA_L2PF=1: decode steps prefetch the weights of their next GEMVs into L2 on a side stream while the
    // short kernels run (l2_prefetch_*; same results; off by default: measured ~1% faster at Ring-mini dims and
    // 3% slower at Ling-2.5 dims, batch 1).
    l2pf_ = cuda::env_flag("LING_CUDA_L2PF");
    LING_CUBLAS_CHECK(cublasCreate(&blas_));
    LING_CUBLAS_CHECK(cublasSetStream(blas_, stream_));
    LING_CUBLAS_CHECK(cublasSetMathMode(blas_, CUBLAS_DEFAULT_MATH));  // no TF32 tensor ops
    // A fixed cuBLAS workspace: sgemm then allocates nothing, so it can be captured in a decode-step graph.
    blas_ws_ = dev_alloc(kBlasWorkspace);
    LING_CUBLAS_CHECK(cublasSetWorkspace(blas_, blas_ws_.get(), kBlasWorkspace));
    LING_CUDA_CHECK(cudaMallocHost(&stage_, kStageBytes));
    LING_CUDA_CHECK(cudaDeviceGetAttribute(&sms_, cudaDevAttrMultiProcessorCount, device_));
    if (const char* e = std::getenv("LING_CUDA_PROFILE"); e && std::string(e) == "1") prof_.enable(stream_);
  }
  ~CudaBackend() override {
    cudaSetDevice(device_);
    cudaStreamSynchronize(stream_);
    prof_.collect();
    prof_.print();
    print_moe_stamps();
    dev_.clear();
    dev16_.clear();
    xbf_.reset();
    lt_.reset();
    if (blas_) cublasDestroy(blas_);
    if (stage_) cudaFreeHost(stage_);
    for (int b = 0; b < 2; ++b) {
      if (up_stage_[b]) cudaFreeHost(up_stage_[b]);
      if (up_done_[b]) cudaEventDestroy(up_done_[b]);
    }
    if (stream_) cudaStreamDestroy(stream_);
  }
  std::string name() const override { return "cuda"; }

  void load(const ModelConfig& c, std::shared_ptr<const ModelWeights> w) override {
    use_device();
    cfg_ = c;
    w_ = std::move(w);
    freqs_ = ref::rope_freqs(rope_freq_params(c));
    LING_CHECK(c.head_dim <= kernels::kQkNormRopeMaxHead, c.source, ": head_dim ", c.head_dim,
               " is larger than the CUDA backend's ", kernels::kQkNormRopeMaxHead, " (QK-norm + RoPE kernel)");
    if (c.has_mla())
      LING_CHECK(c.rope_dim() == c.qk_rope_head_dim, c.source, ": head_dim·partial_rotary_factor = ", c.rope_dim(),
                 " must equal qk_rope_head_dim = ", c.qk_rope_head_dim, " for MLA layers");
    // Projection weights (bf16-capable) and everything else (f32).
    LING_CHECK(opt_.weight_dtype == "auto" || opt_.weight_dtype == "bf16" || opt_.weight_dtype == "f32",
               "--weight-dtype: '", opt_.weight_dtype, "' is not auto, bf16 or f32");
    bf16_ = opt_.weight_dtype == "bf16" || (opt_.weight_dtype == "auto" && w_->stored_dtype != DType::F32);
    std::vector<const Mat*> lin_mats = {&w_->lm_head}, f32_mats = {&w_->embed, &w_->norm};
    for (const LayerWeights& L : w_->layers) {
      for (const Mat* m : {&L.qkv, &L.g_proj, &L.dense, &L.q_a, &L.q_b, &L.q_proj, &L.kv_a, &L.kv_b, &L.gate_up,
                           &L.down, &L.shared.gate_up, &L.shared.down})
        lin_mats.push_back(m);
      for (const Mat* m : {&L.input_norm, &L.post_norm, &L.qkv_bias, &L.q_norm, &L.k_norm, &L.g_norm, &L.dense_bias,
                           &L.q_a_bias, &L.q_a_norm, &L.q_proj_bias, &L.kv_a_bias, &L.kv_a_norm, &L.router,
                           &L.router_bias})
        f32_mats.push_back(m);
      for (const ExpertWeights& e : L.experts) {
        lin_mats.push_back(&e.gate_up);
        lin_mats.push_back(&e.down);
      }
    }
    // Memory plan: weights at their device dtype, the GEMM workspace, and a margin of 10% of the weights plus
    // 256 MiB for activations and caches.
    size_t lin_bytes = 0, f32_bytes = 0;
    for (const Mat* m : lin_mats) lin_bytes += (bf16_ ? 2 : 4) * m->v.size();
    for (const Mat* m : f32_mats) f32_bytes += 4 * m->v.size();
    // cuBLASLt workspaces: the backend's, and with bf16 experts one per side stream of the MoE prefill; the
    // token sampler's (sort and probabilities of one vocabulary row).
    const size_t lt_count = bf16_ ? 1 + (c.num_experts > 0 ? kMoePrefillLanes : 0) : 0;
    const size_t sampler = kernels::sample_rows_workspace_bytes(1, c.vocab_size);
    const size_t weights = lin_bytes + f32_bytes, workspace = lt_count * kernels::LtGemm::kWorkspace + sampler;
    const size_t want = weights + workspace + weights / 10 + (size_t(256) << 20);
    size_t free_b = 0, total_b = 0;
    LING_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    LING_CHECK(want <= free_b, "cuda: ", c.source, " needs ", want >> 20, " MiB (", bf16_ ? "bf16" : "f32",
               " projections ", lin_bytes >> 20, " MiB, f32 norms/embedding/router ", f32_bytes >> 20,
               " MiB, workspace ", workspace >> 20, " MiB, margin ", (want - weights - workspace) >> 20,
               " MiB) but the device has ", free_b >> 20, " MiB free: short by ", (want - free_b) >> 20, " MiB");
    log_info("cuda: memory plan ", want >> 20, " MiB of ", free_b >> 20, " MiB free (", bf16_ ? "bf16" : "f32",
             " projections ", lin_bytes >> 20, " MiB)");
    if (bf16_) lt_ = std::make_unique<kernels::LtGemm>(stream_);
    sample_ws_ = dev_alloc(sampler), sample_ws_bytes_ = sampler;
    // bf16 Lightning layers: g_proj's rows right after qkv's in one allocation, so that a decode step projects
    // both with one GEMV (lightning_block); the generic loop below skips what is already on the device.
    if (bf16_)
      for (const LayerWeights& L : w_->layers)
        if (!L.qkv.empty() && !L.g_proj.empty() && L.qkv.cols == L.g_proj.cols) upload16_pair(L.qkv, L.g_proj);
    for (const Mat* m : lin_mats) bf16_ ? upload16(*m) : upload(*m);
    for (const Mat* m : f32_mats) upload(*m);
    decay_.assign(c.num_hidden_layers, DevF());
    for (int64_t il = 0; il < c.num_hidden_layers; ++il)
      if (c.layers[il].attn == AttnKind::Lightning)
        decay_[il] = to_dev(lightning_decays(c, il, opt_));
    inv_freq_ = to_dev(freqs_.inv_freq);
    mla_ordinal_.assign(c.num_hidden_layers, -1);
    mla_layers_ = 0;
    for (int64_t il = 0; il < c.num_hidden_layers; ++il)
      if (c.layers[il].attn == AttnKind::MLA) mla_ordinal_[il] = mla_layers_++;
    // bf16 models at the kernel's dims: bf16 latent rows and kernels/mla (LING_CUDA_MLA_PAGED=0: fp32 rows and
    // the two-GEMM absorbed form).
    mla_paged_ = bf16_ && mla_layers_ > 0 && c.kv_lora_rank == kernels::kMlaLatent &&
                 c.qk_rope_head_dim == kernels::kMlaRope && cuda::env_flag("LING_CUDA_MLA_PAGED", true);
    // The paged decode reads each sequence's rows through its tensor map (kernels/mla TMA page loads;
    // LING_CUDA_MLA_TMA=0: cp.async).
    mla_tma_ = mla_paged_ && cuda::env_flag("LING_CUDA_MLA_TMA", true);
    // Per MoE layer, device tables of the routed experts' weight addresses (null: not held by this rank).
    expert_tables_.assign(c.num_hidden_layers, {});
    expert_tables_host_.assign(c.num_hidden_layers, {});
    if (bf16_ && c.num_experts > 0) moe_prefill_ = std::make_unique<kernels::MoePrefill>(kMoePrefillLanes);
    if (c.num_experts > 0) {
      router_counter_ = dev_alloc(sizeof(unsigned));
      LING_CUDA_CHECK(cudaMemset(router_counter_.get(), 0, sizeof(unsigned)));
      moe_sync_ = dev_alloc(2 * sizeof(unsigned));
      LING_CUDA_CHECK(cudaMemset(moe_sync_.get(), 0, 2 * sizeof(unsigned)));
      slot_ptrs_ = dev_alloc(2 * kMaxSlotPtrs * sizeof(void*));
    }
    // LING_CUDA_MOE_FUSED=1: one-token decode steps of bf16 MoE layers run router, experts and combine in one
    // launch (kernels/moe launch_moe_fused) where the shapes allow. Off by default: measured slower end to end
    // than the three launches (Ring-mini dims, H100; README, CUDA backend).
    moe_fused_ = bf16_ && c.num_experts > 0 && cuda::env_flag("LING_CUDA_MOE_FUSED");
    // Batch-1 Lightning decode steps fold q/k norm + RoPE and the output gate into the recurrence kernel
    // (LING_CUDA_LIGHTNING_FOLD=0: three launches); its group counters stay zero between launches.
    lightning_fold_ = cuda::env_flag("LING_CUDA_LIGHTNING_FOLD", true);
    // LING_CUDA_FOLD_CLUSTER=1: the fold's output gate by a thread-block cluster of each group's heads (groups of
    // at most 8 heads; LightningDecodeParams::cluster) instead of each group's last CTA through the counters.
    // Off by default: not yet run on a GPU (README, "Switches of the CUDA backend").
    fold_cluster_ = cuda::env_flag("LING_CUDA_FOLD_CLUSTER", false);
    // LING_CUDA_SLOT_PTRS=1: one-token MoE steps have the router write each slot's expert weight pointers
    // (MoeRouteDevParams::gate_up_ptrs / down_ptrs) and the expert kernels read them instead of table[ids].
    // Off by default: not yet run on a GPU.
    slot_ptrs_on_ = cuda::env_flag("LING_CUDA_SLOT_PTRS", false);
    fold_counters_ = dev_alloc(kFoldMaxGroups * sizeof(unsigned));
    LING_CUDA_CHECK(cudaMemset(fold_counters_.get(), 0, kFoldMaxGroups * sizeof(unsigned)));
    // The three-launch path's gate_up runs the shared expert's CTAs first, loading before the wait
    // (MoeGateUpParams::early_id; LING_CUDA_EARLY_SHARED=0: slot order, every CTA waits first).
    early_shared_ = cuda::env_flag("LING_CUDA_EARLY_SHARED", true);
    norm_tail_ = cuda::env_flag("LING_CUDA_NORM_TAIL", false);
    gemv_raw_ = cuda::env_flag("LING_CUDA_GEMV_RAW", true);  // GemvParams::raw_bf16
    // Softmax decode attention over 128-wide heads through the pass whose warps load all their keys at once
    // (LING_CUDA_GQA_WIDE=0: the per-key pass).
    gqa_wide_ = cuda::env_flag("LING_CUDA_GQA_WIDE", true);
    tail_counter_ = dev_alloc(sizeof(unsigned));
    LING_CUDA_CHECK(cudaMemset(tail_counter_.get(), 0, sizeof(unsigned)));
    // LING_CUDA_MOE_L2=1: the fused kernel also requests each CTA's routed gate_up rows into L2 once routed.
    moe_l2_ = cuda::env_flag("LING_CUDA_MOE_L2");
    // LING_CUDA_MOE_STAMPS=1 (diagnostics): the fused kernel records its phase times; the last step's are printed
    // to stderr at exit (median over CTAs, per layer).
    if (moe_fused_ && cuda::env_flag("LING_CUDA_MOE_STAMPS")) {
      moe_stamps_ = dev_alloc(size_t(c.num_hidden_layers) * size_t(sms_) * kernels::kMoeFusedStamps * 8);
      LING_CUDA_CHECK(cudaMemset(moe_stamps_.get(), 0, size_t(c.num_hidden_layers) * size_t(sms_) * kernels::kMoeFusedStamps * 8));
    }
    for (int64_t il = 0; il < c.num_hidden_layers; ++il) {
      const LayerWeights& L = w_->layers[il];
      if (L.experts.empty()) continue;
      // [gate_up 0..E−1, shared gate_up, down 0..E−1, shared down]: entry E is the shared expert.
      const size_t E = L.experts.size();
      std::vector<const void*> tab(2 * (E + 1), nullptr);
      for (size_t e = 0; e < E; ++e) {
        tab[e] = weight_ptr(L.experts[e].gate_up);
        tab[E + 1 + e] = weight_ptr(L.experts[e].down);
      }
      tab[E] = weight_ptr(L.shared.gate_up);
      tab[2 * E + 1] = weight_ptr(L.shared.down);
      expert_tables_[il] = to_dev_raw(tab.data(), sizeof(void*) * tab.size());
      expert_tables_host_[il] = tab;
    }
    sync();
  }

  // Prefill activations and MoE scratch grow with the rows (about 4·(3 + 2k)·hidden bytes each): prompts run
  // in pieces of at most this many tokens.
  int64_t prefill_rows() const override { return kPrefillRows; }
  bool step_graphs() const override {
    return cfg_.num_experts == 0 || kernels::moe_route_supported(cfg_.num_experts, cfg_.num_experts_per_tok,
                                                                  cfg_.n_group, cfg_.topk_group, true);
  }
  bool graphs_enabled() const override { return opt_.cuda_graphs && !prof_.on(); }

  std::vector<uint64_t> step_begin(const std::vector<int32_t>& ids, const BatchPlan& plan) override {
    use_device();
    const int64_t n = int64_t(ids.size());
    LING_CHECK(size_t(n) * (sizeof(int32_t) + sizeof(int64_t)) <= kStageBytes, "cuda: decode batch of ", n,
               " sequences exceeds the step staging buffer");
    if (n > step_cap_) {
      step_cap_ = std::max<int64_t>(n, 2 * step_cap_);
      step_ids_ = dev_alloc(sizeof(int32_t) * size_t(step_cap_));
      step_pos_ = dev_alloc(sizeof(int64_t) * size_t(step_cap_));
      if (mla_paged_) {
        mla_tab_ = dev_alloc(sizeof(void*) * size_t(mla_layers_ * step_cap_));
        mla_tab_host_.clear();
        if (mla_tma_) mla_maps_ = dev_alloc(kernels::kMlaSeqMapBytes * size_t(mla_layers_ * step_cap_));
      }
    }
    // The previous step ended with a synchronising copy of its logits: the staging buffer is free.
    std::memcpy(stage_, plan.pos.data(), sizeof(int64_t) * size_t(n));
    std::memcpy(static_cast<char*>(stage_) + sizeof(int64_t) * size_t(n), ids.data(), sizeof(int32_t) * size_t(n));
    LING_CUDA_CHECK(cudaMemcpyAsync(step_pos_.get(), stage_, sizeof(int64_t) * size_t(n), cudaMemcpyHostToDevice, stream_));
    LING_CUDA_CHECK(cudaMemcpyAsync(step_ids_.get(), static_cast<char*>(stage_) + sizeof(int64_t) * size_t(n),
                                    sizeof(int32_t) * size_t(n), cudaMemcpyHostToDevice, stream_));
    std::vector<uint64_t> key = {uint64_t(n)};
    const int64_t kvw = cfg_.num_key_value_heads * cfg_.head_dim;
    for (const SeqSlice& sl : plan.seqs) {
      auto* st = static_cast<CudaSeqState*>(sl.state);
      for (int64_t il = 0; il < cfg_.num_hidden_layers; ++il) {
        CudaLayerCache& c = st->layers[il];
        const AttnKind kind = cfg_.layers[il].attn;
        auto grow = [&](DevVec& v, int64_t width) {
          LING_CHECK(v.size == sl.pos0 * width, "internal error: cache of layer ", il, " out of step");
          if (v.reserve((sl.pos0 + 1) * width, kCacheMinRows * width, stream_)) ++st->gen;
          v.size = (sl.pos0 + 1) * width;  // the step's ops write row pos0
        };
        if (kind == AttnKind::GQA) {
          grow(c.k, kvw);
          grow(c.v, kvw);
        } else if (kind == AttnKind::MLA) {
          grow(c.latent, latent_floats());
        }
      }
      key.push_back(st->uid);
      key.push_back(st->gen);
    }
    if (mla_paged_) {  // each sequence's latent rows per MLA layer, rewritten when a cache moved or the batch changed
      std::vector<const void*> tab(size_t(mla_layers_ * step_cap_), nullptr);
      for (size_t i = 0; i < plan.seqs.size(); ++i) {
        auto* st = static_cast<CudaSeqState*>(plan.seqs[i].state);
        for (int64_t il = 0; il < cfg_.num_hidden_layers; ++il)
          if (mla_ordinal_[il] >= 0) tab[size_t(mla_ordinal_[il] * step_cap_) + i] = st->layers[il].latent.p;
      }
      if (tab != mla_tab_host_) {
        LING_CUDA_CHECK(cudaMemcpyAsync(mla_tab_.get(), tab.data(), sizeof(void*) * tab.size(), cudaMemcpyHostToDevice,
                                        stream_));
        if (mla_tma_) {  // each sequence's tensor map over its rows' capacity (a moved cache changed the table)
          struct alignas(64) SeqMap {
            unsigned char bytes[kernels::kMlaSeqMapBytes];
          };
          std::vector<SeqMap> maps(tab.size(), SeqMap{});
          for (size_t i = 0; i < plan.seqs.size(); ++i) {
            auto* st = static_cast<CudaSeqState*>(plan.seqs[i].state);
            for (int64_t il = 0; il < cfg_.num_hidden_layers; ++il)
              if (mla_ordinal_[il] >= 0) {
                const DevVec& v = st->layers[il].latent;
                kernels::mla_encode_seq_map(&maps[size_t(mla_ordinal_[il] * step_cap_) + i],
                                            reinterpret_cast<const uint16_t*>(v.p), v.cap / latent_floats());
              }
          }
          LING_CUDA_CHECK(cudaMemcpyAsync(mla_maps_.get(), maps.data(), sizeof(SeqMap) * maps.size(),
                                          cudaMemcpyHostToDevice, stream_));
        }
        sync();
        mla_tab_host_ = std::move(tab);
      }
    }
    arena_.reset();
    step_ = true;
    if (prof_.on()) {
      cuda::spin(50'000'000, stream_);  // 50 ms: the step's launches queue up behind it
      prof_.set_prefix("step ");
    }
    return key;
  }
  void step_end() override {
    side_.join(stream_);
    if (capturing_) {  // an op threw during capture: end it and drop the partial graph
      cudaGraph_t g = nullptr;
      cudaStreamEndCapture(stream_, &g);
      if (g) cudaGraphDestroy(g);
      capturing_ = false;
    }
    step_ = false;
    prof_.set_prefix("");
  }
  void capture_begin() override {
    use_device();
    arena_.reset();
    LING_CUDA_CHECK(cudaStreamBeginCapture(stream_, cudaStreamCaptureModeThreadLocal));
    capturing_ = true;
  }
  std::unique_ptr<StepGraph> capture_end() override {
    cudaGraph_t g = nullptr;
    capturing_ = false;
    side_.join(stream_);
    LING_CUDA_CHECK(cudaStreamEndCapture(stream_, &g));
    auto out = std::make_unique<CudaGraph>();
    const cudaError_t e = cudaGraphInstantiate(&out->exec, g, 0);
    cudaGraphDestroy(g);
    LING_CUDA_CHECK(e);
    return out;
  }
  void replay(StepGraph& graph) override {
    use_device();
    LING_CUDA_CHECK(cudaGraphLaunch(static_cast<CudaGraph&>(graph).exec, stream_));
  }

  std::unique_ptr<SeqState> new_state() override {
    use_device();
    auto s = std::make_unique<CudaSeqState>();
    s->layers.resize(cfg_.num_hidden_layers);
    s->uid = ++next_uid_;
    const int64_t nh = cfg_.num_attention_heads, hd = cfg_.head_dim;
    for (int64_t il = 0; il < cfg_.num_hidden_layers; ++il)
      if (cfg_.layers[il].attn == AttnKind::Lightning) {
        s->layers[il].state = DevF(nh * hd * hd);
        LING_CUDA_CHECK(cudaMemsetAsync(s->layers[il].state.p, 0, sizeof(float) * nh * hd * hd, stream_));
      }
    return s;
  }

  Buffer alloc(int64_t rows, int64_t cols) override {
    use_device();
    DevF d(rows * cols);
    if (rows * cols > 0) LING_CUDA_CHECK(cudaMemsetAsync(d.p, 0, sizeof(float) * rows * cols, stream_));
    Buffer b;
    b.data = d.p;
    b.rows = rows;
    b.cols = cols;
    b.owner = d.own;
    return b;
  }
  void to_host(const Buffer& b, float* dst) override {
    use_device();
    LING_CUDA_CHECK(cudaMemcpyAsync(dst, b.data, sizeof(float) * b.rows * b.cols, cudaMemcpyDeviceToHost, stream_));
    sync();
  }

  void embed(const std::vector<int32_t>& ids, Buffer& out) override {
    use_device();
    cuda::OpScope prof_scope(prof_, "embed");
    std::shared_ptr<void> d = step_ ? step_ids_ : to_dev_raw(ids.data(), ids.size() * sizeof(int32_t));
    EmbedParams p;
    p.ids = static_cast<const int32_t*>(d.get()); p.table = W(w_->embed); p.out = out.data;
    p.n = int64_t(ids.size()); p.H = cfg_.hidden_size;
    kernels::launch_embed(p, stream_);
    launched();
    sync();
  }

  void norm(NormSlot slot, int layer, const Buffer& x, Buffer& out) override {
    use_device();
    cuda::OpScope prof_scope(prof_, "norm");
    add_rms_norm(x.data, nullptr, norm_weight(slot, layer), out.data, x.rows, x.cols);
    launched();
  }

  // Batch-1 decode steps: the add + norm after an op runs inside the op's last kernel where that kernel takes an
  // AddNormTail (the one-row GEMV, the narrow MoE down pass) with LING_CUDA_NORM_TAIL=1: one launch fewer per
  // norm. Off by default: no faster end to end on an H100 (README, CUDA backend).
  void announce_add_norm(Buffer& h, NormSlot slot, int layer, Buffer& out) override {
    tail_ = {};
    tail_taken_ = false;
    if (!step_ || !norm_tail_ || h.rows != 1 || h.cols % 4 != 0 || !cuda::aligned16(h.data) ||
        !cuda::aligned16(out.data))
      return;
    const Mat& w = norm_weight(slot, layer);
    if (!cuda::aligned16(W(w))) return;
    tail_.norm.h = h.data, tail_.norm.w = W(w), tail_.norm.y = out.data, tail_.norm.rows = 1;
    tail_.norm.dim = h.cols, tail_.norm.eps = cfg_.rms_norm_eps;
    tail_.counter = static_cast<unsigned*>(tail_counter_.get());
  }
  // The announced tail for the op's last kernel (once; empty when none is pending).
  kernels::AddNormTail take_tail() {
    kernels::AddNormTail t = tail_;
    if (t.counter) tail_taken_ = true;
    tail_ = {};
    return t;
  }

  void add_norm(Buffer& h, const Buffer& d, NormSlot slot, int layer, Buffer& out) override {
    tail_ = {};
    if (tail_taken_) {  // the op's last kernel did it
      tail_taken_ = false;
      return;
    }
    use_device();
    cuda::OpScope prof_scope(prof_, "add_norm");
    add_rms_norm(h.data, d.data, norm_weight(slot, layer), out.data, h.rows, h.cols);
    launched();
  }

  void add(Buffer& h, const Buffer& d) override {
    use_device();
    cuda::OpScope prof_scope(prof_, "add");
    cuda::add(h.data, d.data, h.rows * h.cols, stream_);
    launched();
  }

  void attn_gqa(int layer, const Buffer& x, const BatchPlan& plan, Buffer& out) override {
    use_device();
    cuda::OpScope prof_scope(prof_, "attn_gqa");
    const LayerWeights& L = w_->layers[layer];
    const int64_t n = x.rows, H = cfg_.hidden_size, nh = cfg_.num_attention_heads, nkv = cfg_.num_key_value_heads;
    const int64_t hd = cfg_.head_dim, width = (nh + 2 * nkv) * hd, kvw = nkv * hd;
    DevF qkv = scratch(n * width), o = scratch(n * nh * hd);
    auto pos = positions(plan);
    lin(x.data, n, H, L.qkv, L.qkv_bias, qkv.p);
    qk_norm_rope(L, qkv.p, n, width, nh, nkv, pos);
    if (step_) {  // one token per sequence: rows written at the device-side position, keys up to the capacity
      for (const SeqSlice& s : plan.seqs) {
        CudaLayerCache& c = static_cast<CudaSeqState*>(s.state)->layers[layer];
        const float* row = qkv.p + s.row0 * width;
        cuda::write_rows_at(row + nh * hd, c.k.p, row + nh * hd + kvw, c.v.p, kvw, pos + s.row0, stream_);
        const int64_t S = c.k.cap / kvw;
        DevF ws = scratch(cuda::decode_attention_workspace(1, nh, S, hd));
        cuda::OpScope ps(prof_, ".gqa.decode_attention");
        cuda::decode_attention(row, width, c.k.p, kvw, c.v.p, kvw, o.p + s.row0 * nh * hd, nh * hd, pos + s.row0, 1, S,
                               nh, nkv, hd, hd, float(1.0 / std::sqrt(double(hd))), ws.p, stream_, gqa_wide_);
        launched();
      }
      lin(o.p, n, nh * hd, L.dense, L.dense_bias, out.data, 0, true);
      return;
    }
    for (const SeqSlice& s : plan.seqs) {
      CudaLayerCache& c = static_cast<CudaSeqState*>(s.state)->layers[layer];
      LING_CHECK(c.k.size == s.pos0 * kvw, "internal error: GQA cache of layer ", layer, " out of step");
      const float* rows = qkv.p + s.row0 * width;
      c.k.append_rows(rows + nh * hd, width, s.count, kvw, stream_);
      c.v.append_rows(rows + nh * hd + kvw, width, s.count, kvw, stream_);
      cuda::OpScope ps(prof_, ".gqa.flash_attention");
      flash_attention(rows, width, c.k.p, kvw, c.v.p, kvw, o.p + s.row0 * nh * hd, nh * hd, s.count, s.pos0 + s.count,
                      s.pos0, nh, nkv, hd, hd, float(1.0 / std::sqrt(double(hd))));
    }
    lin(o.p, n, nh * hd, L.dense, L.dense_bias, out.data, 0, true);
    sync();
  }

  void attn_lightning(int layer, const Buffer& x, const BatchPlan& plan, Buffer& out) override {
    lightning_block(layer, x, plan, out, nullptr);
  }
  void attn_lightning_unnormed(int layer, const Buffer& x, const BatchPlan& plan, Buffer& y,
                               std::vector<double>& sumsq) override {
    LING_CHECK(!step_, "internal error: tensor-parallel Lightning in a decode-step graph");
    lightning_block(layer, x, plan, y, &sumsq);
  }
  void scale_rows(Buffer& x, const std::vector<float>& f) override {
    use_device();
    LING_CHECK(int64_t(f.size()) == x.rows, "internal error: scale_rows with ", f.size(), " factors for ", x.rows, " rows");
    auto d = to_dev_raw(f.data(), sizeof(float) * f.size());
    cuda::scale_rows(x.data, static_cast<const float*>(d.get()), x.rows, x.cols, stream_);
    launched();
    sync();
  }
  void add_row_vector(Buffer& x, const std::vector<float>& v) override {
    use_device();
    LING_CHECK(int64_t(v.size()) == x.cols, "internal error: add_row_vector of ", v.size(), " values on ", x.cols, " columns");
    auto d = to_dev_raw(v.data(), sizeof(float) * v.size());
    cuda::add_bias(x.data, static_cast<const float*>(d.get()), x.rows, x.cols, x.cols, stream_);
    launched();
    sync();
  }
  // The Lightning block; with `sumsq` the group normalisation and the output bias are left to the caller
  // (cpu_backend.cpp's twin), and the per-token sums of squares come back to the host.
  void lightning_block(int layer, const Buffer& x, const BatchPlan& plan, Buffer& out, std::vector<double>* sumsq) {
    use_device();
    cuda::OpScope prof_scope(prof_, "attn_lightning");
    const LayerWeights& L = w_->layers[layer];
    const int64_t n = x.rows, H = cfg_.hidden_size, nh = cfg_.num_attention_heads, hd = cfg_.head_dim;
    const int64_t width = 3 * nh * hd, inner = nh * hd;
    // Decode-sized batches with qkv and g_proj stacked on the device: one GEMV gives rows q‖k‖v‖gate (row stride
    // ld); otherwise two projections, qkv rows of stride width.
    const uint16_t* wqkvg = stacked16(L.qkv, L.g_proj);
    const bool one_gemv = wqkvg && !sumsq && L.qkv_bias.empty() && n <= kGemvRows && H % 8 == 0 &&
                          cuda::aligned16(x.data) && L.qkv.rows == width &&
                          L.g_proj.rows == inner;
    const int64_t ld = one_gemv ? width + inner : width;
    DevF qkv = scratch(n * ld), o = scratch(n * inner), gate = one_gemv ? DevF() : scratch(n * inner);
    auto pos = positions(plan);
    if (one_gemv) {
      cuda::OpScope ps(prof_, prof_.on() ? cat(".lin M", n, " N", ld, " K", H, " bf16 (qkv + g)") : std::string());
      kernels::GemvParams gp;
      gp.x = x.data; gp.w = wqkvg; gp.y = qkv.p; gp.M = n; gp.N = ld; gp.K = H; gp.raw_bf16 = gemv_raw_;
      kernels::launch_gemv(gp, stream_);
      l2_prefetch_rest_of_layer(layer);
    } else {
      lin(x.data, n, H, L.qkv, L.qkv_bias, qkv.p);
    }
    // Batch-1 decode steps with q‖k‖v‖gate rows: q/k norm + RoPE and the output gate run inside the recurrence
    // kernel (LightningDecodeParams folds; LING_CUDA_LIGHTNING_FOLD=0: separate launches). Only for one sequence:
    // the fold launches once per sequence, and at B 16 (Ring-mini dims, H100) that step took 6.18 ms against
    // 5.26 ms with the batched separate kernels.
    const bool fold = step_ && n == 1 && one_gemv && hd == kernels::kLightningHeadDim && lightning_fold_ &&
                      cfg_.group_norm_size <= kFoldMaxGroups && nh % cfg_.group_norm_size == 0;
    if (!fold) qk_norm_rope(L, qkv.p, n, ld, nh, nh, pos);
    for (const SeqSlice& s : plan.seqs) {
      CudaLayerCache& c = static_cast<CudaSeqState*>(s.state)->layers[layer];
      const float* q = qkv.p + s.row0 * ld;
      cuda::OpScope ps(prof_, ".lightning.recurrence");
      if (step_ && hd == kernels::kLightningHeadDim) {  // one token: the bandwidth-bound decode kernel
        kernels::LightningDecodeParams p;
        p.q = q; p.k = q + inner; p.v = q + 2 * inner; p.o = o.p + s.row0 * inner; p.state = c.state.p;
        p.g = decay_[layer].p; p.B = 1; p.nh = nh; p.ldq = p.ldk = p.ldv = ld; p.ldo = inner;
        p.scale = float(1.0 / std::sqrt(double(hd)));
        if (fold) {
          p.pos = pos + s.row0; p.inv_freq = cfg_.rope_dim() > 0 ? inv_freq_.p : nullptr;
          p.q_norm = L.q_norm.empty() ? nullptr : W(L.q_norm); p.k_norm = L.k_norm.empty() ? nullptr : W(L.k_norm);
          p.rope_dim = cfg_.rope_dim(); p.qk_eps = cfg_.rms_norm_eps; p.rope_factor = freqs_.attention_factor;
          p.gate_w = W(L.g_norm); p.gate = q + width; p.ld_gate = ld; p.groups = cfg_.group_norm_size;
          p.gate_eps = cfg_.rms_norm_eps; p.counters = static_cast<unsigned*>(fold_counters_.get());
          p.cluster = fold_cluster_;
        }
        kernels::launch_lightning_decode(p, stream_);
        continue;
      }
      if (s.count > 1 && bf16_ && hd == kernels::kLightningHeadDim) {
        // bf16 model, prefill: the tensor-core chunked kernel over bf16 q/k/v (the GEMMs round their inputs to
        // bf16 too), fp32 outputs and state.
        cuda::OpScope pk(prof_, ".lightning.prefill_tc");
        void* qkv16 = bf16_scratch(size_t(s.count * width));
        cuda::f32_to_bf16(q, ld, qkv16, s.count, width, stream_);
        const uint16_t* b = static_cast<const uint16_t*>(qkv16);
        kernels::LightningPrefillParams p;
        p.q = b; p.k = b + inner; p.v = b + 2 * inner; p.ldq = p.ldk = p.ldv = width;
        p.o = o.p + s.row0 * inner; p.ldo = inner; p.o_fp32 = true;
        p.state = c.state.p; p.g = decay_[layer].p; p.T = s.count; p.nh = nh;
        p.scale = float(1.0 / std::sqrt(double(hd)));
        const size_t ws = kernels::lightning_prefill_workspace_bytes(p.T, nh, 0, sms_);
        DevF wsb = scratch(int64_t((ws + 3) / 4));
        p.workspace = ws ? wsb.p : nullptr;
        kernels::launch_lightning_prefill(p, stream_);
        launched();
        sync();  // the bf16 copy and the workspace die here
        continue;
      }
      if (s.count > 1 && cuda::lightning_chunked_supported(hd)) {  // prefill: the state stays on the SM
        cuda::lightning_chunked(q, q + inner, q + 2 * inner, ld, o.p + s.row0 * inner, inner, c.state.p,
                                decay_[layer].p, s.count, nh, hd, float(1.0 / std::sqrt(double(hd))), stream_);
        launched();
        continue;
      }
      cuda::lightning(q, q + inner, q + 2 * inner, ld, o.p + s.row0 * inner, inner, c.state.p, decay_[layer].p,
                      s.count, nh, hd, float(1.0 / std::sqrt(double(hd))), stream_);
      launched();
    }
    if (!one_gemv) lin(x.data, n, H, L.g_proj, Mat{}, gate.p);
    if (sumsq) {
      auto dss = dev_alloc(sizeof(double) * size_t(n));
      cuda::gate_unnormed(o.p, W(L.g_norm), gate.p, n, inner, static_cast<double*>(dss.get()), stream_);
      launched();
      lin(o.p, n, inner, L.dense, Mat{}, out.data);
      sumsq->assign(size_t(n), 0.0);
      LING_CUDA_CHECK(cudaMemcpyAsync(sumsq->data(), dss.get(), sizeof(double) * size_t(n), cudaMemcpyDeviceToHost,
                                      stream_));
      sync();
      return;
    }
    if (!fold) {  // (with the fold the gate ran inside the recurrence kernel)
      GroupNormGateParams gp;
      gp.o = o.p; gp.w = W(L.g_norm); gp.rows = n; gp.width = inner; gp.groups = cfg_.group_norm_size;
      gp.gate = one_gemv ? qkv.p + width : gate.p;
      gp.ld_gate = one_gemv ? ld : 0;
      gp.eps = cfg_.rms_norm_eps;
      kernels::launch_group_norm_gate(gp, stream_);
      launched();
    }
    lin(o.p, n, inner, L.dense, L.dense_bias, out.data, 0, true);
    sync();
  }

  void attn_mla(int layer, const Buffer& x, const BatchPlan& plan, Buffer& out) override {
    use_device();
    cuda::OpScope prof_scope(prof_, "attn_mla");
    const LayerWeights& L = w_->layers[layer];
    const int64_t n = x.rows, H = cfg_.hidden_size, nh = cfg_.num_attention_heads;
    const int64_t dn = cfg_.qk_nope_head_dim, dr = cfg_.qk_rope_head_dim, dv = cfg_.v_head_dim;
    const int64_t r = cfg_.kv_lora_rank, dqk = dn + dr, lc = r + dr;
    DevF q = scratch(n * nh * dqk), ckv = scratch(n * lc), o = scratch(n * nh * dv);
    auto pos = positions(plan);
    if (!L.q_a.empty()) {
      const int64_t rq = cfg_.q_lora_rank;
      DevF qa = scratch(n * rq);
      lin(x.data, n, H, L.q_a, L.q_a_bias, qa.p);
      latent_norm(qa.p, L.q_a_norm, n, rq, rq);
      lin(qa.p, n, rq, L.q_b, Mat{}, q.p);
      sync();
    } else {
      lin(x.data, n, H, L.q_proj, L.q_proj_bias, q.p);
    }
    lin(x.data, n, H, L.kv_a, L.kv_a_bias, ckv.p);
    latent_norm(ckv.p, L.kv_a_norm, n, r, lc);
    mla_rope(q.p + dn, pos, n, nh, nh * dqk, dqk, dr);
    mla_rope(ckv.p + r, pos, n, 1, lc, lc, dr);
    const float scale = float(std::pow(double(dqk), -0.5) * freqs_.mla_mscale2);
    if (step_ && mla_paged_) {  // bf16 rows, absorbed form through kernels/mla (every sequence in one launch)
      mla_paged_step(layer, q.p, ckv.p, pos, plan, scale, o.p);
      lin(o.p, n, nh * dv, L.dense, L.dense_bias, out.data, 0, true);
      return;
    }
    if (step_) {  // absorbed form over the latent cache, the new row written at the device-side position
      const auto [kvb, kvb16] = weight_ref(L.kv_b);
      for (const SeqSlice& s : plan.seqs) {
        CudaLayerCache& c = static_cast<CudaSeqState*>(s.state)->layers[layer];
        cuda::write_row_at(ckv.p + s.row0 * lc, c.latent.p, lc, pos + s.row0, stream_);
        const int64_t S = c.latent.cap / lc;
        // q̃ for every head, then scores = q̃·cacheᵀ and u = softmax·cache as fp32 GEMMs over the cache's
        // capacity (rows past the position masked to zero): every cache row is read once for all heads.
        cuda::OpScope ps(prof_, ".mla.absorbed_attention");
        DevF qa = scratch(nh * lc), sc = scratch(nh * S), u = scratch(nh * r);
        cuda::mla_q_absorb(q.p + s.row0 * nh * dqk, nh * dqk, kvb, kvb16, qa.p, 1, nh, dn, dr, dv, r, stream_);
        const float one = 1.0f, zero = 0.0f;
        LING_CUBLAS_CHECK(cublasSgemm(blas_, CUBLAS_OP_T, CUBLAS_OP_N, int(S), int(nh), int(lc), &one, c.latent.p,
                                      int(lc), qa.p, int(lc), &zero, sc.p, int(S)));
        cuda::masked_softmax(sc.p, nh, S, pos + s.row0, scale, stream_);
        LING_CUBLAS_CHECK(cublasSgemm(blas_, CUBLAS_OP_N, CUBLAS_OP_N, int(r), int(nh), int(S), &one, c.latent.p,
                                      int(lc), sc.p, int(S), &zero, u.p, int(r)));
        cuda::mla_out(u.p, kvb, kvb16, o.p + s.row0 * nh * dv, 1, nh, dn, dv, r, stream_);
        launched();
      }
      lin(o.p, n, nh * dv, L.dense, L.dense_bias, out.data, 0, true);
      return;
    }
    for (const SeqSlice& s : plan.seqs) {
      CudaLayerCache& c = static_cast<CudaSeqState*>(s.state)->layers[layer];
      const int64_t S = s.pos0 + s.count;
      const float* latent = nullptr;  // fp32 rows [S, lc], as the append leaves them (it may move the cache)
      DevF lat32;
      LING_CHECK(c.latent.size == s.pos0 * latent_floats(), "internal error: MLA cache of layer ", layer,
                 " out of step");
      if (mla_paged_) {  // bf16 rows in the cache; the expansion reads them back as fp32
        DevF rows16((s.count * lc + 1) / 2);
        cuda::f32_to_bf16(ckv.p + s.row0 * lc, lc, rows16.p, s.count, lc, stream_);
        const float* rows = c.latent.append(rows16.p, s.count * latent_floats(), stream_);
        lat32 = DevF(S * lc);
        cuda::bf16_to_f32(rows, lat32.p, S * lc, stream_);
        latent = lat32.p;
      } else {
        latent = c.latent.append(ckv.p + s.row0 * lc, s.count * lc, stream_);
      }
      // Non-absorbed form: K and V of every cached token expanded from the latent (recomputed per prompt piece:
      // the expansion costs ~5% of the attention it feeds), then causal flash attention from position pos0.
      DevF kv(S * nh * (dn + dv)), K(S * nh * dqk), V(S * nh * dv);
      lin(latent, S, r, L.kv_b, Mat{}, kv.p, lc);
      cuda::mla_expand(kv.p, latent, K.p, V.p, S, nh, dn, dr, dv, r, stream_);
      launched();
      cuda::OpScope ps(prof_, ".mla.flash_attention");
      flash_attention(q.p + s.row0 * nh * dqk, nh * dqk, K.p, nh * dqk, V.p, nh * dv, o.p + s.row0 * nh * dv, nh * dv,
                      s.count, S, s.pos0, nh, nh, dqk, dv, scale);
    }
    lin(o.p, n, nh * dv, L.dense, L.dense_bias, out.data, 0, true);
    sync();
  }

  // Floats per cached MLA row: the latent ‖ k_pe in fp32, or in bf16 two to a float (mla_paged_).
  int64_t latent_floats() const {
    const int64_t lc = cfg_.kv_lora_rank + cfg_.qk_rope_head_dim;
    return mla_paged_ ? lc / 2 : lc;
  }

  // One decode step of an MLA layer on bf16 latent rows (mla_paged_): each sequence's new row (bf16) written at its
  // position, q̃ = W_UKᵀ q_nope ‖ q_pe for all rows in bf16, kernels/mla over each sequence's rows (the table of
  // step_begin; the split plan sized by the caches' capacity, fixed for a captured graph), then o = W_UV u.
  void mla_paged_step(int layer, const float* q, const float* ckv, const int64_t* pos, const BatchPlan& plan,
                      float scale, float* o) {
    const LayerWeights& L = w_->layers[layer];
    const int64_t nh = cfg_.num_attention_heads, dn = cfg_.qk_nope_head_dim, dr = cfg_.qk_rope_head_dim;
    const int64_t dv = cfg_.v_head_dim, r = cfg_.kv_lora_rank, lc = r + dr, n = int64_t(plan.seqs.size());
    const auto [kvb, kvb16] = weight_ref(L.kv_b);
    DevF ckv16 = scratch((n * lc + 1) / 2), qa = scratch(n * nh * lc), qa16 = scratch((n * nh * lc + 1) / 2);
    DevF len = scratch(n), u = scratch(n * nh * r);
    cuda::f32_to_bf16(ckv, lc, ckv16.p, n, lc, stream_);
    int64_t cap = 1;
    for (int64_t i = 0; i < n; ++i) {
      const SeqSlice& s = plan.seqs[size_t(i)];
      LING_CHECK(s.row0 == i && s.count == 1, "internal error: MLA decode step rows out of order");
      CudaLayerCache& c = static_cast<CudaSeqState*>(s.state)->layers[layer];
      cuda::write_row_at(ckv16.p + i * latent_floats(), c.latent.p, latent_floats(), pos + i, stream_);
      cap = std::max(cap, c.latent.cap / latent_floats());
    }
    cuda::mla_q_absorb(q, nh * (dn + dr), kvb, kvb16, qa.p, n, nh, dn, dr, dv, r, stream_);
    cuda::f32_to_bf16(qa.p, nh * lc, qa16.p, n, nh * lc, stream_);
    cuda::lengths_from_positions(pos, reinterpret_cast<int32_t*>(len.p), n, stream_);
    kernels::MlaDecodeParams mp;
    mp.q_bf16 = reinterpret_cast<const uint16_t*>(qa16.p);
    mp.seq_cache = static_cast<const uint16_t* const*>(mla_tab_.get()) + mla_ordinal_[layer] * step_cap_;
    mp.seq_len = reinterpret_cast<const int32_t*>(len.p);
    mp.u = u.p;
    mp.B = n, mp.nh = nh, mp.max_seq_len = cap, mp.max_pages = (cap + kernels::kMlaPage - 1) / kernels::kMlaPage;
    mp.scale = scale;
    mp.wgmma = true;
    mp.bf16_softmax_weights = true;  // P·C with bf16 P (the flash-attention rounding; the tokens split per page)
    if (mla_tma_) {
      mp.tma = true;
      mp.seq_maps = static_cast<const unsigned char*>(mla_maps_.get()) +
                    kernels::kMlaSeqMapBytes * size_t(mla_ordinal_[layer] * step_cap_);
    }
    DevF ws = scratch(int64_t((kernels::mla_decode_workspace_bytes(n, nh, cap, 0, sms_, true) + 3) / 4));
    mp.workspace = ws.p;
    {
      cuda::OpScope ps(prof_, ".mla.paged_decode");
      kernels::launch_mla_decode(mp, stream_);
    }
    cuda::mla_out(u.p, kvb, kvb16, o, n, nh, dn, dv, r, stream_);
    launched();
  }

  void dense_ffn(int layer, const Buffer& x, Buffer& out) override {
    use_device();
    cuda::OpScope prof_scope(prof_, "dense_ffn");
    const LayerWeights& L = w_->layers[layer];
    swiglu_mlp(x.data, x.rows, L.gate_up, L.down, out.data, true);
    sync();
  }

  void moe_ffn(int layer, const Buffer& x, Buffer& out, MoeTrace* trace) override {
    use_device();
    cuda::OpScope prof_scope(prof_, "moe_ffn");
    const LayerWeights& L = w_->layers[layer];
    const int64_t n = x.rows, H = cfg_.hidden_size, E = cfg_.num_experts, k = cfg_.num_experts_per_tok;
    DevF dlogits = scratch(n * E);
    // Decode steps: the router GEMV and the routing in one launch (launch_moe_router); otherwise the GEMV here.
    const bool one_launch = step_ && n <= kernels::kMoeRouterMaxTokens && H % 8 == 0 &&
                            cuda::aligned16(x.data) && !dev16_.count(L.router.data());
    if (!one_launch) lin(x.data, n, H, L.router, Mat{}, dlogits.p);
    if (step_) {  // routing and the routed experts on the device (no trace: steps run unobserved)
      const int64_t I = cfg_.moe_intermediate_size;
      const bool shared = !L.shared.gate_up.empty();
      // A shared expert as wide as a routed one runs as slot k of every token; another width runs on its own.
      const bool shared_slot = shared && L.shared.gate_up.rows == 2 * I;
      const int64_t slots = k + (shared_slot ? 1 : 0);
      DevF ids = scratch(n * slots), wts = scratch(n * slots), act = scratch(n * slots * I);
      int32_t* dids = reinterpret_cast<int32_t*>(ids.p);
      if (n == 1 && one_launch && moe_fused_ &&
          kernels::moe_fused_supported(H, I, E, k, cfg_.n_group, cfg_.topk_group, shared_slot, sms_)) {
        if (shared && !shared_slot) swiglu_mlp(x.data, n, L.shared.gate_up, L.shared.down, out.data);
        cuda::OpScope pf(prof_, ".moe.fused");
        const void* const* tab = static_cast<const void* const*>(expert_tables_[layer].get());
        kernels::MoeFusedParams f;
        f.router.route.logits = dlogits.p;
        f.router.route.bias = L.router_bias.empty() ? nullptr : W(L.router_bias);
        f.router.route.n = 1, f.router.route.E = E, f.router.route.k = k;
        f.router.route.n_group = cfg_.n_group, f.router.route.topk_group = cfg_.topk_group;
        f.router.route.routed_scaling_factor = float(cfg_.routed_scaling_factor);
        f.router.route.shared_slot = shared_slot;
        f.router.x = x.data, f.router.H = H, f.router.w = W(L.router), f.router.logits = dlogits.p;
        f.gate_up = reinterpret_cast<const uint16_t* const*>(tab);
        f.down = reinterpret_cast<const uint16_t* const*>(tab + E + 1);
        f.act = act.p, f.out = out.data, f.I = I, f.accumulate = shared && !shared_slot;
        f.sync = static_cast<unsigned*>(moe_sync_.get());
        f.l2_gate_up = moe_l2_;
        if (moe_stamps_)
          f.stamps = static_cast<unsigned long long*>(moe_stamps_.get()) + size_t(layer) * sms_ * kernels::kMoeFusedStamps;
        kernels::launch_moe_fused(f, stream_);
        l2_prefetch_next_layer(layer);
        return;
      }
      // bf16 experts, several tokens: slots grouped by expert on the device, each expert read once for all its
      // tokens (one token: each slot streams its own expert, no plan needed)
      const bool grouped = bf16_ && n > 1 && n * slots <= kernels::kMoePlanMaxSlots;
      DevF plan = scratch(grouped ? int64_t((kernels::moe_plan_bytes(n, slots) + 3) / 4) : 0);
      int32_t* dplan = grouped ? reinterpret_cast<int32_t*>(plan.p) : nullptr;
      // One token, bf16, router and routing in one launch: the router writes each slot's expert pointers.
      const bool ptr_slots = slot_ptrs_on_ && n == 1 && one_launch && bf16_ && slots <= kMaxSlotPtrs;
      const void** gu_ptrs = static_cast<const void**>(slot_ptrs_.get());
      const void** dn_ptrs = gu_ptrs ? gu_ptrs + kMaxSlotPtrs : nullptr;
      {
        cuda::OpScope pr(prof_, ".moe.route");
        kernels::MoeRouteDevParams rp;
        rp.logits = dlogits.p; rp.bias = L.router_bias.empty() ? nullptr : W(L.router_bias);
        rp.topk_ids = dids; rp.topk_weights = wts.p; rp.n = n; rp.E = E; rp.k = k;
        rp.n_group = cfg_.n_group; rp.topk_group = cfg_.topk_group;
        rp.routed_scaling_factor = float(cfg_.routed_scaling_factor); rp.shared_slot = shared_slot;
        if (one_launch) {
          kernels::MoeRouterParams r;
          r.route = rp; r.x = x.data; r.H = H; r.w = W(L.router); r.logits = dlogits.p;
          if (ptr_slots) {  // the picks' weight pointers beside the ids: the expert kernels skip the table
            const void* const* tab = static_cast<const void* const*>(expert_tables_[layer].get());
            r.route.gate_up_table = tab, r.route.down_table = tab + E + 1;
            r.route.gate_up_ptrs = gu_ptrs, r.route.down_ptrs = dn_ptrs;
          }
          r.counter = static_cast<unsigned*>(router_counter_.get());
          kernels::launch_moe_router(r, stream_);
        } else {
          kernels::launch_moe_route(rp, stream_);
        }
      }
      l2_prefetch_experts(layer, dids, n * slots);
      // Expert tables: gate_up of experts 0..E−1 and the shared expert, then their down projections.
      const void* const* tab = static_cast<const void* const*>(expert_tables_[layer].get());
      {
        cuda::OpScope ps(prof_, ".moe.gate_up");
        kernels::MoeGateUpParams gp;
        gp.x = x.data; gp.ids = dids; gp.act = act.p; gp.n = n; gp.k = slots; gp.H = H; gp.I = I;
        gp.plan = dplan;
        // the shared expert's slot: a constant table entry, its CTAs first with their loads before the wait
        if (early_shared_ && shared_slot && !dplan && slots >= 2) gp.early_id = int32_t(E);
        gp.table_entries = E + 1;  // the routed experts and the shared one
        if (ptr_slots) gp.slot_ptrs = gu_ptrs;
        if (bf16_) gp.gate_up = reinterpret_cast<const uint16_t* const*>(tab);
        else gp.gate_up_f32 = reinterpret_cast<const float* const*>(tab);
        kernels::launch_moe_gate_up_swiglu(gp, stream_);
      }
      if (shared && !shared_slot) swiglu_mlp(x.data, n, L.shared.gate_up, L.shared.down, out.data);
      cuda::OpScope ps(prof_, ".moe.down");
      kernels::MoeDownParams dp;
      dp.act = act.p; dp.ids = dids; dp.weights = wts.p; dp.out = out.data; dp.n = n; dp.k = slots; dp.H = H; dp.I = I;
      dp.accumulate = shared && !shared_slot;
      dp.plan = dplan;
      dp.ids_ready = true;  // the router ran before gate_up: this kernel may start its weight loads early
      DevF part = scratch(int64_t(kernels::moe_down_workspace_bytes(n, slots, H) / sizeof(float)));
      dp.workspace = part.p;
      if (ptr_slots) dp.slot_ptrs = dn_ptrs;
      if (bf16_) dp.down = reinterpret_cast<const uint16_t* const*>(tab + E + 1);
      else dp.down_f32 = reinterpret_cast<const float* const*>(tab + E + 1);
      if (n == 1 && bf16_ && !dplan && I <= 512 && slots <= 16 && H == tail_.norm.dim) dp.tail = take_tail();
      kernels::launch_moe_down_combine(dp, stream_);
      l2_prefetch_next_layer(layer);
      return;
    }
    if (moe_prefill_ && kernels::moe_route_supported(E, k, cfg_.n_group, cfg_.topk_group, false)) {
      moe_prefill(layer, x, dlogits.p, out, trace);
      return;
    }
    std::vector<float> logits(n * E), wts(n * k);
    std::vector<int32_t> ids(n * k);
    LING_CUDA_CHECK(cudaMemcpyAsync(logits.data(), dlogits.p, sizeof(float) * n * E, cudaMemcpyDeviceToHost, stream_));
    sync();
    route_tokens(cfg_, logits.data(), L.router_bias.data(), n, ids, wts, trace);
    std::vector<std::vector<int64_t>> slots_of(E);
    for (int64_t i = 0; i < n * k; ++i) slots_of[ids[i]].push_back(i);
    // One host→device copy of every expert's token and slot lists: [tok | slot] per expert, back to back.
    std::vector<int64_t> lists;
    std::vector<int64_t> at(E, -1);
    for (int64_t e = 0; e < E; ++e) {
      if (slots_of[e].empty() || L.experts[e].gate_up.empty()) continue;  // not held here (expert parallelism)
      at[e] = int64_t(lists.size());
      for (int64_t sl : slots_of[e]) lists.push_back(sl / k);
      lists.insert(lists.end(), slots_of[e].begin(), slots_of[e].end());
    }
    auto dlists = to_dev_raw(lists.data(), sizeof(int64_t) * lists.size());
    const int64_t* dl = static_cast<const int64_t*>(dlists.get());
    DevF ye(n * k * H);
    LING_CUDA_CHECK(cudaMemsetAsync(ye.p, 0, sizeof(float) * n * k * H, stream_));  // experts held elsewhere add 0
    for (int64_t e = 0; e < E; ++e) {
      if (at[e] < 0) continue;
      const int64_t m = int64_t(slots_of[e].size());
      DevF xe(m * H), y(m * H);
      cuda::gather_rows(x.data, H, dl + at[e], xe.p, m, H, stream_);
      launched();
      swiglu_mlp(xe.p, m, L.experts[e].gate_up, L.experts[e].down, y.p);
      cuda::scatter_rows(y.p, dl + at[e] + m, ye.p, m, H, stream_);
      launched();
    }
    if (!L.shared.gate_up.empty()) swiglu_mlp(x.data, n, L.shared.gate_up, L.shared.down, out.data);
    else LING_CUDA_CHECK(cudaMemsetAsync(out.data, 0, sizeof(float) * n * H, stream_));
    auto dw = to_dev_raw(wts.data(), sizeof(float) * n * k);
    cuda::moe_combine(ye.p, static_cast<const float*>(dw.get()), out.data, n, k, H, stream_);
    launched();
    sync();
  }

  // bf16 prefill of an MoE layer on the device: routing (kernels/moe, the exact rule of ref::moe_route), the
  // shared expert through cuBLASLt, then the routed experts permuted by expert through grouped GEMMs
  // (kernels/moe_prefill.h). The trace, when asked for, is the device routing copied back.
  void moe_prefill(int layer, const Buffer& x, const float* dlogits, Buffer& out, MoeTrace* trace) {
    const LayerWeights& L = w_->layers[layer];
    const int64_t n = x.rows, H = cfg_.hidden_size, E = cfg_.num_experts, k = cfg_.num_experts_per_tok;
    const int64_t I = cfg_.moe_intermediate_size;
    DevF ids(n * k), wts(n * k);
    {
      cuda::OpScope pr(prof_, ".moe.route");
      kernels::MoeRouteDevParams rp;
      rp.logits = dlogits; rp.bias = L.router_bias.empty() ? nullptr : W(L.router_bias);
      rp.topk_ids = reinterpret_cast<int32_t*>(ids.p); rp.topk_weights = wts.p; rp.n = n; rp.E = E; rp.k = k;
      rp.n_group = cfg_.n_group; rp.topk_group = cfg_.topk_group;
      rp.routed_scaling_factor = float(cfg_.routed_scaling_factor);
      kernels::launch_moe_route(rp, stream_);
    }
    if (trace) {
      std::vector<int32_t> hid(size_t(n * k));
      trace->weights.resize(size_t(n * k));
      LING_CUDA_CHECK(cudaMemcpyAsync(hid.data(), ids.p, sizeof(int32_t) * hid.size(), cudaMemcpyDeviceToHost, stream_));
      LING_CUDA_CHECK(cudaMemcpyAsync(trace->weights.data(), wts.p, sizeof(float) * hid.size(), cudaMemcpyDeviceToHost,
                                      stream_));
      LING_CUDA_CHECK(cudaStreamSynchronize(stream_));
      trace->ids.assign(hid.begin(), hid.end());
    }
    const bool shared = !L.shared.gate_up.empty();
    if (shared) swiglu_mlp(x.data, n, L.shared.gate_up, L.shared.down, out.data);
    const auto* dev = static_cast<const uint16_t* const*>(expert_tables_[layer].get());
    const auto* host = reinterpret_cast<const uint16_t* const*>(expert_tables_host_[layer].data());
    kernels::MoePrefillParams p;
    p.x = x.data; p.topk_ids = reinterpret_cast<const int32_t*>(ids.p); p.topk_weights = wts.p;
    p.gate_up_dev = dev; p.down_dev = dev + E + 1; p.gate_up_host = host; p.down_host = host + E + 1;
    p.out = out.data; p.n = n; p.k = k; p.E = E; p.H = H; p.I = I; p.accumulate = shared;
    DevF ws(int64_t((kernels::moe_prefill_workspace_bytes(n, k, E, H, I) + 3) / 4));
    p.workspace = ws.p;
    cuda::OpScope pe(prof_, ".moe.experts_prefill");
    moe_prefill_->run(p, stream_);
    sync();
  }

  void lm_head(const Buffer& x, const std::vector<int64_t>& rows, Buffer& logits) override {
    use_device();
    cuda::OpScope prof_scope(prof_, "lm_head");
    const int64_t H = cfg_.hidden_size, m = int64_t(rows.size());
    bool identity = m == x.rows;
    for (int64_t i = 0; i < m && identity; ++i) identity = rows[i] == i;
    if (identity) {  // every row (decode steps): no gather
      lin(x.data, m, H, w_->lm_head, Mat{}, logits.data);
      sync();
      return;
    }
    auto drows = to_dev_raw(rows.data(), sizeof(int64_t) * m);
    DevF xs(m * H);
    cuda::gather_rows(x.data, H, static_cast<const int64_t*>(drows.get()), xs.p, m, H, stream_);
    launched();
    lin(xs.p, m, H, w_->lm_head, Mat{}, logits.data);
    sync();
  }

  // Tokens picked on the device (kernels/sampling): only the ids come back to the host.
  bool pick_tokens(const Buffer& logits, const std::vector<TokenPick>& picks, std::vector<int64_t>& ids) override {
    use_device();
    cuda::OpScope prof_scope(prof_, "pick_tokens");
    const int64_t n = logits.rows, V = logits.cols;
    LING_CHECK(int64_t(picks.size()) == n, "internal error: ", picks.size(), " token picks for ", n, " logit rows");
    std::vector<kernels::SampleSpec> specs(static_cast<size_t>(n));
    bool sampled = false;
    for (int64_t i = 0; i < n; ++i) {
      const TokenPick& tp = picks[size_t(i)];
      specs[size_t(i)] = {tp.temperature, int32_t(std::min<int64_t>(tp.top_k, INT32_MAX)), tp.top_p, tp.draw};
      sampled = sampled || tp.temperature > 0.0f;
    }
    if (sampled && !sample_ws_bytes_) {  // normally allocated at load with the memory plan
      sample_ws_bytes_ = kernels::sample_rows_workspace_bytes(n, V);
      sample_ws_ = dev_alloc(sample_ws_bytes_);
    }
    if (n > pick_ids_rows_) pick_ids_ = dev_alloc(sizeof(int32_t) * size_t(n)), pick_ids_rows_ = n;
    kernels::SampleRowsParams p;
    p.logits = logits.data, p.specs = specs.data(), p.ids = static_cast<int32_t*>(pick_ids_.get());
    p.n = n, p.V = V, p.workspace = sample_ws_.get();
    kernels::launch_sample_rows(p, stream_);
    launched();
    std::vector<int32_t> host(static_cast<size_t>(n));
    LING_CUDA_CHECK(cudaMemcpyAsync(host.data(), pick_ids_.get(), sizeof(int32_t) * size_t(n), cudaMemcpyDeviceToHost,
                                    stream_));
    LING_CUDA_CHECK(cudaStreamSynchronize(stream_));
    if (prof_.on()) prof_.collect();
    ids.assign(host.begin(), host.end());
    return true;
  }

 private:
  // One thread may drive several CUDA backends (tensor parallelism): every entry point selects its device.
  void use_device() { LING_CUDA_CHECK(cudaSetDevice(device_)); }
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
    if (!sync_launches_ || capturing_) return;
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
  std::shared_ptr<void> dev16(std::initializer_list<const Mat*> mats) {
    size_t n = 0;
    for (const Mat* m : mats) n += m->v.size();
    auto d = dev_alloc(sizeof(uint16_t) * n);
    if (!up_stage_[0]) {
      for (int b = 0; b < 2; ++b) {
        LING_CUDA_CHECK(cudaMallocHost(&up_stage_[b], sizeof(uint16_t) * kUpStageElems));
        LING_CUDA_CHECK(cudaEventCreateWithFlags(&up_done_[b], cudaEventDisableTiming));
      }
    }
    uint16_t* dst = static_cast<uint16_t*>(d.get());
    for (const Mat* m : mats) {
      const float* v = m->v.data();
      const size_t k = m->v.size();
      for (size_t b0 = 0; b0 < k; b0 += kUpStageElems) {
        const int64_t len = int64_t(std::min(kUpStageElems, k - b0));
        LING_CUDA_CHECK(cudaEventSynchronize(up_done_[up_next_]));  // this buffer's previous copy is done
        uint16_t* h = static_cast<uint16_t*>(up_stage_[up_next_]);
#pragma omp parallel for if (len > (int64_t(1) << 18))
        for (int64_t i = 0; i < len; ++i) h[i] = f32_to_bf16(v[b0 + size_t(i)]);
        LING_CUDA_CHECK(cudaMemcpyAsync(dst + b0, h, sizeof(uint16_t) * size_t(len), cudaMemcpyHostToDevice, stream_));
        LING_CUDA_CHECK(cudaEventRecord(up_done_[up_next_], stream_));
        up_next_ ^= 1;
      }
      dst += k;
    }
    return d;
  }
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
  bool l2pf_on() const { return l2pf_ && step_ && bf16_ && !prof_.on(); }
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
  void l2_prefetch_rest_of_layer(int layer) {
    if (!l2pf_on()) return;
    const LayerWeights& L = w_->layers[layer];
    kernels::L2PrefetchParams p;
    add_weight(p, L.dense);
    if (!L.experts.empty()) {
      add_weight(p, L.router);
      add_weight(p, L.shared.gate_up);
      add_weight(p, L.shared.down);
    }
    l2_prefetch(p);
  }
  // Once the router has chosen: the down projections of the chosen experts (read after their gate/up), when they
  // fit in a third of a 50 MB L2.
  void l2_prefetch_experts(int layer, const int32_t* ids, int64_t n_ids) {
    if (!l2pf_on()) return;
    const LayerWeights& L = w_->layers[layer];
    const size_t per = weight_bytes(L.experts.front().down);
    if (per == 0 || size_t(n_ids) * per > kL2PrefetchBudget) return;
    kernels::L2PrefetchParams p;
    const int64_t E = int64_t(L.experts.size());
    p.table = static_cast<const void* const*>(expert_tables_[layer].get()) + E + 1;
    p.table_len = int(E + 1);
    p.ids = ids;
    p.n_ids = int(n_ids);
    p.table_bytes = per;
    l2_prefetch(p);
  }
  // After an MoE layer: the head of the next layer's first projection (read right after the add + norm).
  void l2_prefetch_next_layer(int layer) {
    if (!l2pf_on() || layer + 1 >= int(w_->layers.size())) return;
    const LayerWeights& N = w_->layers[layer + 1];
    kernels::L2PrefetchParams p;
    if (const uint16_t* s = stacked16(N.qkv, N.g_proj))
      p.add(s, std::min((N.qkv.v.size() + N.g_proj.v.size()) * 2, kL2PrefetchBudget));
    else
      add_weight(p, N.qkv, kL2PrefetchBudget);
    l2_prefetch(p);
  }
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
  // op_out: y is the output of the op (attention or FFN) whose add_norm was announced: a one-row GEMV runs that
  // add + norm as its tail.
  void lin(const float* x, int64_t M, int64_t K, const Mat& w, const Mat& bias, float* y, int64_t ldx = 0,
           bool op_out = false) {
    LING_CHECK(w.cols == K, "internal error: linear with K ", K, " on a [", w.rows, ", ", w.cols, "] weight");
    const int64_t N = w.rows;
    if (M == 0 || N == 0) return;
    cuda::OpScope prof_scope(prof_, prof_.on() ? cat(".lin M", M, " N", N, " K", K, dev16_.count(w.data()) ? " bf16" : " f32")
                                               : std::string());
    auto w16 = dev16_.find(w.data());
    const auto [wp, is16] = weight_ref(w);
    if (M <= kGemvRows && K % 8 == 0 && (ldx ? ldx : K) % 4 == 0 && cuda::aligned16(x) && cuda::aligned16(wp)) {
      // decode-sized M: the bandwidth-bound GEMV (weights streamed once for all rows)
      kernels::GemvParams gp;
      gp.x = x; gp.ldx = ldx ? ldx : K; gp.bias = bias.empty() ? nullptr : W(bias); gp.y = y; gp.M = M; gp.N = N; gp.K = K;
      if (is16) gp.w = static_cast<const uint16_t*>(wp);
      else gp.w_f32 = static_cast<const float*>(wp);
      gp.raw_bf16 = gemv_raw_;
      if (op_out && M == 1 && N == tail_.norm.dim && cuda::aligned16(y)) gp.tail = take_tail();
      kernels::launch_gemv(gp, stream_);
      return;
    }
    if (w16 != dev16_.end()) {
      void* xb = bf16_scratch(size_t(M * K));
      cuda::f32_to_bf16(x, ldx ? ldx : K, xb, M, K, stream_);
      launched();
      lt_->run(w16->second.get(), xb, y, M, N, K);
      if (!bias.empty()) {
        cuda::add_bias(y, W(bias), M, N, N, stream_);
        launched();
      }
      return;
    }
    const float one = 1.0f, zero = 0.0f;
    LING_CUBLAS_CHECK(cublasSgemm(blas_, CUBLAS_OP_T, CUBLAS_OP_N, int(N), int(M), int(K), &one, W(w), int(K), x,
                                  int(ldx ? ldx : K), &zero, y, int(N)));
    if (!bias.empty()) {
      cuda::add_bias(y, W(bias), M, N, N, stream_);
      launched();
    }
  }

  // Causal prefill attention of T queries (positions pos0..pos0+T−1) over S cached keys through the flash
  // kernels: bf16 tensor cores for bf16 models at the dims they cover (q, k, v rounded to bf16 first), fp32
  // otherwise. Strides in floats; o fp32.
  void flash_attention(const float* q, int64_t ldq, const float* k, int64_t ldk, const float* v, int64_t ldv, float* o,
                       int64_t ldo, int64_t T, int64_t S, int64_t pos0, int64_t nh, int64_t nkv, int64_t dk, int64_t dv,
                       float scale) {
    kernels::FlashAttentionParams p;
    p.o = o; p.ldo = ldo; p.T = T; p.S = S; p.q_pos0 = pos0; p.nh = nh; p.nkv = nkv; p.dk = dk; p.dv = dv;
    p.scale = scale;
    if (bf16_ && kernels::flash_attention_bf16_dims(dk, dv)) {
      const int64_t wq = nh * dk, wk = nkv * dk, wv = nkv * dv;
      DevF qb((T * wq + 1) / 2), kb((S * wk + 1) / 2), vb((S * wv + 1) / 2);
      cuda::f32_to_bf16(q, ldq, qb.p, T, wq, stream_);
      cuda::f32_to_bf16(k, ldk, kb.p, S, wk, stream_);
      cuda::f32_to_bf16(v, ldv, vb.p, S, wv, stream_);
      launched();
      p.q = qb.p; p.k = kb.p; p.v = vb.p; p.ldq = wq; p.ldk = wk; p.ldv = wv;
      p.dtype = DType::BF16;
      kernels::launch_flash_attention(p, stream_);
      sync();  // the bf16 copies die here
      return;
    }
    p.q = q; p.k = k; p.v = v; p.ldq = ldq; p.ldk = ldk; p.ldv = ldv;
    p.dtype = DType::F32;
    kernels::launch_flash_attention(p, stream_);
    sync();
  }

  // Per-head QK-norm and NeoX RoPE of the q and k heads of a fused qkv row, one launch (head dims ≤ 1024,
  // checked at load).
  void qk_norm_rope(const LayerWeights& L, float* qkv, int64_t n, int64_t width, int64_t nq, int64_t nk,
                    const int64_t* pos) {
    QkNormRopeParams p;
    p.x = qkv; p.pos = pos; p.inv_freq = inv_freq_.p;
    p.wq = L.q_norm.empty() ? nullptr : W(L.q_norm); p.wk = L.k_norm.empty() ? nullptr : W(L.k_norm);
    p.rows = n; p.nq = nq; p.nk = nk; p.hd = cfg_.head_dim; p.ld = width; p.rope_dim = cfg_.rope_dim();
    p.eps = cfg_.rms_norm_eps; p.attention_factor = freqs_.attention_factor;
    kernels::launch_qk_norm_rope(p, stream_);
    launched();
  }

  void add_rms_norm(float* h, const float* d, const Mat& w, float* y, int64_t rows, int64_t dim) {
    AddRmsNormParams p;
    p.h = h; p.d = d; p.w = W(w); p.y = y; p.rows = rows; p.dim = dim; p.eps = cfg_.rms_norm_eps;
    kernels::launch_add_rms_norm(p, stream_);
  }

  // MLA latent RMSNorm in place on rows of width r at row stride ld, eps hard-wired to 1e-6 (§2.7 step 2).
  void latent_norm(float* x, const Mat& w, int64_t rows, int64_t r, int64_t ld) {
    RmsNormParams p;
    p.x = x; p.y = x; p.w = W(w); p.rows = rows; p.dim = r; p.ldx = p.ldy = ld; p.eps = 1e-6;
    kernels::launch_rms_norm(p, stream_);
    launched();
  }

  // MLA RoPE (interleaved pairs) on `heads` heads of rd values per row.
  void mla_rope(float* x, const int64_t* pos, int64_t rows, int64_t heads, int64_t row_stride, int64_t head_stride,
                int64_t rd) {
    RopeParams p;
    p.x = x; p.pos = pos; p.inv_freq = inv_freq_.p; p.rows = rows; p.heads = heads; p.row_stride = row_stride;
    p.head_stride = head_stride; p.rope_dim = rd; p.attention_factor = freqs_.attention_factor; p.interleaved = true;
    kernels::launch_rope(p, stream_);
    launched();
  }

  void swiglu_mlp(const float* x, int64_t n, const Mat& gate_up, const Mat& down, float* y, bool op_out = false) {
    const int64_t H = cfg_.hidden_size, I = gate_up.rows / 2;
    DevF gu = scratch(n * 2 * I), act = scratch(n * I);
    lin(x, n, H, gate_up, Mat{}, gu.p);
    SwigluParams sp;
    sp.gu = gu.p; sp.out = act.p; sp.rows = n; sp.I = I;
    kernels::launch_swiglu(sp, stream_);
    launched();
    lin(act.p, n, I, down, Mat{}, y, 0, op_out);
    sync();  // gu/act die here
  }

  BackendOptions opt_;
  int device_ = 0;
  bool bf16_ = false;
  std::unique_ptr<kernels::LtGemm> lt_;
  std::shared_ptr<void> router_counter_;  // launch_moe_router's CTA counter (zero between launches)
  std::shared_ptr<void> moe_sync_;        // launch_moe_fused's barrier counters (zero between launches)
  std::shared_ptr<void> moe_stamps_;      // LING_CUDA_MOE_STAMPS: [layers][SMs][kMoeFusedStamps] globaltimer
  void print_moe_stamps() const {
    if (!moe_stamps_) return;
    const size_t per = size_t(sms_) * kernels::kMoeFusedStamps;
    std::vector<unsigned long long> st(size_t(cfg_.num_hidden_layers) * per);
    if (cudaMemcpy(st.data(), moe_stamps_.get(), st.size() * 8, cudaMemcpyDeviceToHost) != cudaSuccess) return;
    std::fprintf(stderr, "fused MoE phases of the last step, µs (median over CTAs; then slowest CTA): wait router "
                         "barrier1 route gate_up barrier2 down | gap since the previous MoE layer's end\n");
    unsigned long long prev_end = 0;
    for (int64_t l = 0; l < cfg_.num_hidden_layers; ++l) {
      const unsigned long long* L = st.data() + size_t(l) * per;
      if (L[0] == 0) continue;
      std::fprintf(stderr, "  layer %lld:", static_cast<long long>(l));
      unsigned long long first = ~0ull, last = 0;  // the layer's first CTA start and last CTA end
      for (int c = 0; c < sms_; ++c)
        first = std::min(first, L[size_t(c) * kernels::kMoeFusedStamps]),
        last = std::max(last, L[size_t(c) * kernels::kMoeFusedStamps + kernels::kMoeFusedStamps - 1]);
      for (int i = 0; i + 1 < kernels::kMoeFusedStamps; ++i) {
        std::vector<double> d;
        for (int c = 0; c < sms_; ++c) {
          const unsigned long long* C = L + size_t(c) * kernels::kMoeFusedStamps;
          d.push_back(double(C[i + 1] - C[i]) * 1e-3);
        }
        std::sort(d.begin(), d.end());
        std::fprintf(stderr, " %.1f/%.1f", d[d.size() / 2], d.back());
      }
      std::fprintf(stderr, " | total %.1f gap %.1f\n", double(last - first) * 1e-3,
                   prev_end ? double(first - prev_end) * 1e-3 : 0.0);
      prev_end = last;
    }
  }
  bool moe_fused_ = false, moe_l2_ = false, early_shared_ = true;
  bool norm_tail_ = false, tail_taken_ = false;  // announce_add_norm
  bool gemv_raw_ = true, gqa_wide_ = true;
  kernels::AddNormTail tail_;                   // announced, not yet taken
  std::shared_ptr<void> tail_counter_;          // the tails' CTA counter (zero between launches)
  static constexpr int64_t kFoldMaxGroups = 64;
  static constexpr int64_t kMaxSlotPtrs = 64;  // one token's slots whose expert pointers the router writes
  std::shared_ptr<void> slot_ptrs_;  // [2][kMaxSlotPtrs]: gate_up then down pointers of one token's slots
  bool lightning_fold_ = true, fold_cluster_ = false, slot_ptrs_on_ = false;
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
  bool sync_launches_ = false;  // LING_CUDA_SYNC
  bool l2pf_ = false;           // LING_CUDA_L2PF
  static constexpr size_t kL2PrefetchBudget = size_t(16) << 20;  // bytes prefetched ahead at most per fork
  cuda::SideBranch side_;       // the L2 prefetches' stream
  int sms_ = 0;                                 // multiprocessors of the device
  uint64_t next_uid_ = 0;
};

}  // namespace

int cuda_device_count() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
}

std::unique_ptr<Backend> make_cuda_backend(const BackendOptions& options) {
  LING_CHECK(options.mla_latent_norm, "the CUDA backend always applies the MLA latent norms");
  return std::make_unique<CudaBackend>(options);
}

}  // namespace ling
