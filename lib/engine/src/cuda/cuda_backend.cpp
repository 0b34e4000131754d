// CudaBackend (cuda_backend.h): construction and the memory plan, weight uploads (bf16 staging, stacked qkv + g),
// decode steps and their graphs, caches, norms, projections (GEMV / cuBLASLt / sgemm), the LM head and token picks,
// the L2 prefetch side branch; and the backend factory.
#include "cuda_backend.h"

namespace ling::cuda_impl {

CudaBackend::CudaBackend(const BackendOptions& o) : opt_(o) {
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
  kernels::set_programmatic_launch(sw_.pdl);
  if (const std::string changed = cuda_switches_changed(sw_); !changed.empty()) log_info("cuda: switches ", changed);
  LING_CUBLAS_CHECK(cublasCreate(&blas_));
  LING_CUBLAS_CHECK(cublasSetStream(blas_, stream_));
  LING_CUBLAS_CHECK(cublasSetMathMode(blas_, CUBLAS_DEFAULT_MATH));  // no TF32 tensor ops
  // A fixed cuBLAS workspace: sgemm then allocates nothing, so it can be captured in a decode-step graph.
  blas_ws_ = dev_alloc(kBlasWorkspace);
  LING_CUBLAS_CHECK(cublasSetWorkspace(blas_, blas_ws_.get(), kBlasWorkspace));
  LING_CUDA_CHECK(cudaMallocHost(&stage_, kStageBytes));
  LING_CUDA_CHECK(cudaDeviceGetAttribute(&sms_, cudaDevAttrMultiProcessorCount, device_));
  if (sw_.profile) prof_.enable(stream_);
}

CudaBackend::~CudaBackend() {
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

void CudaBackend::load(const ModelConfig& c, std::shared_ptr<const ModelWeights> w) {
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
  // One-token decode steps read each MoE router whose values are all bf16 values (bf16 checkpoints) from a bf16
  // copy: the same logits (the widening is exact), half the bytes (the roofline of `ling bench` counts them at 2
  // bytes). The fp32 copy stays for prefill. LING_CUDA_ROUTER_BF16=0: the fp32 copy only.
  const bool router16 = bf16_ && c.num_experts > 0 && sw_.router_bf16;
  if (router16)
    for (const LayerWeights& L : w_->layers) f32_bytes += 2 * L.router.v.size();
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
  router16_.assign(c.num_hidden_layers, {});
  if (router16)
    for (int64_t il = 0; il < c.num_hidden_layers; ++il) {
      const Mat& r = w_->layers[il].router;
      if (!r.empty() && std::all_of(r.v.begin(), r.v.end(), [](float v) { return round_bf16(v) == v; }))
        router16_[il] = dev16({&r});
    }
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
               c.qk_rope_head_dim == kernels::kMlaRope && sw_.mla_paged;
  // The paged decode reads each sequence's rows through its tensor map (kernels/mla TMA page loads;
  // LING_CUDA_MLA_TMA=0: cp.async).
  mla_tma_ = mla_paged_ && sw_.mla_tma;
  // Per MoE layer, device tables of the routed experts' weight addresses (null: not held by this rank).
  expert_tables_.assign(c.num_hidden_layers, {});
  expert_tables_host_.assign(c.num_hidden_layers, {});
  if (bf16_ && c.num_experts > 0) moe_prefill_ = std::make_unique<kernels::MoePrefill>(kMoePrefillLanes);
  if (c.num_experts > 0) {
    router_counter_ = dev_alloc(sizeof(unsigned));
    LING_CUDA_CHECK(cudaMemset(router_counter_.get(), 0, sizeof(unsigned)));
    moe_sync_ = dev_alloc(2 * sizeof(unsigned));
    LING_CUDA_CHECK(cudaMemset(moe_sync_.get(), 0, 2 * sizeof(unsigned)));
  }
  // LING_CUDA_MOE_FUSED=1: one-token decode steps of bf16 MoE layers run router, experts and combine in one
  // launch (kernels/moe launch_moe_fused) where the shapes allow. Off by default: measured slower end to end
  // than the three launches (Ring-mini dims, H100; README, CUDA backend).
  moe_fused_ = bf16_ && c.num_experts > 0 && sw_.moe_fused;
  fold_counters_ = dev_alloc(kFoldMaxGroups * sizeof(unsigned));
  LING_CUDA_CHECK(cudaMemset(fold_counters_.get(), 0, kFoldMaxGroups * sizeof(unsigned)));
  // LING_CUDA_ROUTER_HEAD=1: one-token steps run the post-attention add + norm inside the router kernel of MoE
  // layers (hidden ≤ 2,048), one launch fewer per layer; the same values (router_head_ok, settle_norms).
  router_head_ = c.num_experts > 0 && c.hidden_size <= kernels::kMoeRouterHeadMaxH && sw_.router_head;
  if (router_head_) d_save_ = dev_alloc(size_t(c.hidden_size) * sizeof(float));
  // LING_CUDA_MOE_STAMPS (diagnostics): the fused kernel's phase times, the last step's printed at exit.
  if (moe_fused_ && sw_.moe_stamps) {
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

std::vector<uint64_t> CudaBackend::step_begin(const std::vector<int32_t>& ids, const BatchPlan& plan) {
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

void CudaBackend::step_end() {
  if (capturing_) pending_norm_ = PendingNorm{}, deferred_h_ = nullptr;  // an abandoned capture: nothing to settle
  else use_device();                                                      // settles what a step left pending
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

std::unique_ptr<StepGraph> CudaBackend::capture_end() {
  use_device();  // what is pending goes into the graph
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

std::unique_ptr<SeqState> CudaBackend::new_state() {
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

Buffer CudaBackend::alloc(int64_t rows, int64_t cols) {
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

void CudaBackend::embed(const std::vector<int32_t>& ids, Buffer& out) {
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

void CudaBackend::add_norm(Buffer& h, const Buffer& d, NormSlot slot, int layer, Buffer& out) {
  LING_CUDA_CHECK(cudaSetDevice(device_));  // not use_device(): a deferred delta is consumed here, not settled
  if (pending_norm_.h) settle_norms();
  cuda::OpScope prof_scope(prof_, "add_norm");
  const float* first = nullptr;  // a residual delta deferred by the router's head
  if (deferred_h_) {
    if (deferred_h_ == h.data) first = static_cast<const float*>(d_save_.get()), deferred_h_ = nullptr;
    else settle_norms();
  }
  if (!first && slot == NormSlot::PostAttention && h.rows == 1 && router_head_ok(layer, h.rows) &&
      cuda::aligned16(h.data) && cuda::aligned16(d.data) && cuda::aligned16(out.data)) {
    pending_norm_ = PendingNorm{h.data, d.data, &norm_weight(slot, layer), out.data, h.cols, layer};
    return;
  }
  add_rms_norm(h.data, d.data, norm_weight(slot, layer), out.data, h.rows, h.cols, first);
  launched();
}

bool CudaBackend::router_head_ok(int layer, int64_t n) const {
  if (!router_head_ || !step_ || n != 1 || moe_fused_ || layer < 0 || layer >= cfg_.num_hidden_layers) return false;
  const int64_t H = cfg_.hidden_size;
  const LayerWeights& L = w_->layers[size_t(layer)];
  return cfg_.layers[size_t(layer)].ffn == FfnKind::MoE && H % 8 == 0 && H <= kernels::kMoeRouterHeadMaxH &&
         !dev16_.count(L.router.data());
}

void CudaBackend::settle_norms() {
  if (pending_norm_.h) {
    const PendingNorm p = pending_norm_;
    pending_norm_ = PendingNorm{};
    add_rms_norm(p.h, p.d, *p.w, p.out, 1, p.dim);
    launched();
  }
  if (deferred_h_) {
    cuda::add(deferred_h_, static_cast<const float*>(d_save_.get()), cfg_.hidden_size, stream_);
    deferred_h_ = nullptr;
    launched();
  }
}

void CudaBackend::lm_head(const Buffer& x, const std::vector<int64_t>& rows, Buffer& logits) {
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

bool CudaBackend::pick_tokens(const Buffer& logits, const std::vector<TokenPick>& picks, std::vector<int64_t>& ids) {
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

std::shared_ptr<void> CudaBackend::dev16(std::initializer_list<const Mat*> mats) {
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

void CudaBackend::l2_prefetch_rest_of_layer(int layer) {
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

void CudaBackend::l2_prefetch_experts(int layer, const int32_t* ids, int64_t n_ids) {
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

void CudaBackend::l2_prefetch_next_layer(int layer) {
  if (!l2pf_on() || layer + 1 >= int(w_->layers.size())) return;
  const LayerWeights& N = w_->layers[layer + 1];
  kernels::L2PrefetchParams p;
  if (const uint16_t* s = stacked16(N.qkv, N.g_proj))
    p.add(s, std::min((N.qkv.v.size() + N.g_proj.v.size()) * 2, kL2PrefetchBudget));
  else
    add_weight(p, N.qkv, kL2PrefetchBudget);
  l2_prefetch(p);
}

void CudaBackend::lin(const float* x, int64_t M, int64_t K, const Mat& w, const Mat& bias, float* y, int64_t ldx) {
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
    gp.raw_bf16 = sw_.gemv_raw;
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

}  // namespace ling::cuda_impl

namespace ling {

int cuda_device_count() {
  int n = 0;
  return cudaGetDeviceCount(&n) == cudaSuccess ? n : 0;
}

std::unique_ptr<Backend> make_cuda_backend(const BackendOptions& options) {
  LING_CHECK(options.mla_latent_norm, "the CUDA backend always applies the MLA latent norms");
  return std::make_unique<cuda_impl::CudaBackend>(options);
}

}  // namespace ling
