// CudaBackend (cuda_backend.h): Lightning attention layers — the stacked qkv + g projection, the decode kernel with
// its folds (q/k norm + RoPE, output gate) for one-token steps, the chunked tensor-core prefill, the output gate
// and the dense projection.
#include "cuda_backend.h"

namespace ling::cuda_impl {

void CudaBackend::attn_lightning(int layer, const Buffer& x, const BatchPlan& plan, Buffer& out) {
  lightning_block(layer, x, plan, out, nullptr);
}

void CudaBackend::attn_lightning_unnormed(int layer, const Buffer& x, const BatchPlan& plan, Buffer& y,
                                          std::vector<double>& sumsq) {
  LING_CHECK(!step_, "internal error: tensor-parallel Lightning in a decode-step graph");
  lightning_block(layer, x, plan, y, &sumsq);
}

void CudaBackend::scale_rows(Buffer& x, const std::vector<float>& f) {
  use_device();
  LING_CHECK(int64_t(f.size()) == x.rows, "internal error: scale_rows with ", f.size(), " factors for ", x.rows, " rows");
  auto d = to_dev_raw(f.data(), sizeof(float) * f.size());
  cuda::scale_rows(x.data, static_cast<const float*>(d.get()), x.rows, x.cols, stream_);
  launched();
  sync();
}

void CudaBackend::add_row_vector(Buffer& x, const std::vector<float>& v) {
  use_device();
  LING_CHECK(int64_t(v.size()) == x.cols, "internal error: add_row_vector of ", v.size(), " values on ", x.cols, " columns");
  auto d = to_dev_raw(v.data(), sizeof(float) * v.size());
  cuda::add_bias(x.data, static_cast<const float*>(d.get()), x.rows, x.cols, x.cols, stream_);
  launched();
  sync();
}

void CudaBackend::lightning_block(int layer, const Buffer& x, const BatchPlan& plan, Buffer& out,
                                  std::vector<double>* sumsq) {
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
    gp.x = x.data; gp.w = wqkvg; gp.y = qkv.p; gp.M = n; gp.N = ld; gp.K = H; gp.raw_bf16 = sw_.gemv_raw;
    kernels::launch_gemv(gp, stream_);
    l2_prefetch_rest_of_layer(layer);
  } else {
    lin(x.data, n, H, L.qkv, L.qkv_bias, qkv.p);
  }
  // Batch-1 decode steps with q‖k‖v‖gate rows: q/k norm + RoPE and the output gate run inside the recurrence
  // kernel (LightningDecodeParams folds; LING_CUDA_LIGHTNING_FOLD=0: separate launches). Only for one sequence:
  // the fold launches once per sequence, and at B 16 (Ring-mini dims, H100) that step took 6.18 ms against
  // 5.26 ms with the batched separate kernels.
  const bool fold = step_ && n == 1 && one_gemv && hd == kernels::kLightningHeadDim && sw_.lightning_fold &&
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
        p.cluster = sw_.fold_cluster, p.state_early = sw_.state_early;
      }
      p.late_trigger = sw_.lightning_late;
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
  lin(o.p, n, inner, L.dense, L.dense_bias, out.data);
  sync();
}

}  // namespace ling::cuda_impl
