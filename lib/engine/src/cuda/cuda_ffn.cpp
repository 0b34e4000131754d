// CudaBackend (cuda_backend.h): FFN layers — the dense SwiGLU MLP and the MoE layer (router and routing on the
// device, the experts per slot or grouped by expert for decode steps, the fused one-launch form, the grouped prefill
// path, the host-routed fp32 path).
#include "cuda_backend.h"

namespace ling::cuda_impl {

void CudaBackend::dense_ffn(int layer, const Buffer& x, Buffer& out) {
  use_device();
  cuda::OpScope prof_scope(prof_, "dense_ffn");
  const LayerWeights& L = w_->layers[layer];
  swiglu_mlp(x.data, x.rows, L.gate_up, L.down, out.data);
  sync();
}

void CudaBackend::moe_ffn(int layer, const Buffer& x, Buffer& out, MoeTrace* trace) {
  LING_CUDA_CHECK(cudaSetDevice(device_));
  // The pending post-attention norm that makes x runs as the router's head (router_head_ok); anything else
  // pending is settled first.
  const PendingNorm head = pending_norm_.h && pending_norm_.out == x.data && pending_norm_.layer == layer &&
                                   router_head_ok(layer, x.rows)
                               ? pending_norm_
                               : PendingNorm{};
  if (head.h) pending_norm_ = PendingNorm{};
  if (pending_norm_.h || deferred_h_) settle_norms();
  cuda::OpScope prof_scope(prof_, "moe_ffn");
  const LayerWeights& L = w_->layers[layer];
  const int64_t n = x.rows, H = cfg_.hidden_size, E = cfg_.num_experts, k = cfg_.num_experts_per_tok;
  DevF dlogits = scratch(n * E);
  // Decode steps: the router GEMV and the routing in one launch (launch_moe_router); otherwise the GEMV here.
  const bool one_launch = step_ && n <= kernels::kMoeRouterMaxTokens && H % 8 == 0 &&
                          cuda::aligned16(x.data) && !dev16_.count(L.router.data());
  LING_CHECK(!head.h || one_launch, "internal error: the router's add + norm head without the one-launch router");
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
      f.l2_gate_up = sw_.moe_l2;
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
    {
      cuda::OpScope pr(prof_, ".moe.route");
      kernels::MoeRouteDevParams rp;
      rp.logits = dlogits.p; rp.bias = L.router_bias.empty() ? nullptr : W(L.router_bias);
      rp.topk_ids = dids; rp.topk_weights = wts.p; rp.n = n; rp.E = E; rp.k = k;
      rp.n_group = cfg_.n_group; rp.topk_group = cfg_.topk_group;
      rp.routed_scaling_factor = float(cfg_.routed_scaling_factor); rp.shared_slot = shared_slot;
      if (one_launch) {
        kernels::MoeRouterParams r;
        r.route = rp; r.x = x.data; r.H = H; r.logits = dlogits.p;
        if (router16_[size_t(layer)]) r.w16 = static_cast<const uint16_t*>(router16_[size_t(layer)].get());
        else r.w = W(L.router);
        r.counter = static_cast<unsigned*>(router_counter_.get());
        r.late_trigger = sw_.router_late;
        if (head.h) {  // x is written by the router (CTA 0); h keeps d missing until the next add_norm
          r.x = nullptr;
          r.head.h = head.h, r.head.d = head.d, r.head.w = W(*head.w), r.head.x_out = x.data;
          r.head.d_save = static_cast<float*>(d_save_.get()), r.head.eps = cfg_.rms_norm_eps;
          deferred_h_ = head.h;
        }
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
      if (sw_.early_shared && shared_slot && !dplan && slots >= 2) gp.early_id = int32_t(E);
      gp.table_entries = E + 1;  // the routed experts and the shared one
      gp.lean = sw_.gate_up_lean, gp.l2_later = sw_.gate_up_l2;
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
    if (bf16_) dp.down = reinterpret_cast<const uint16_t* const*>(tab + E + 1);
    else dp.down_f32 = reinterpret_cast<const float* const*>(tab + E + 1);
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

void CudaBackend::moe_prefill(int layer, const Buffer& x, const float* dlogits, Buffer& out, MoeTrace* trace) {
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

void CudaBackend::swiglu_mlp(const float* x, int64_t n, const Mat& gate_up, const Mat& down, float* y) {
  const int64_t H = cfg_.hidden_size, I = gate_up.rows / 2;
  DevF gu = scratch(n * 2 * I), act = scratch(n * I);
  lin(x, n, H, gate_up, Mat{}, gu.p);
  SwigluParams sp;
  sp.gu = gu.p; sp.out = act.p; sp.rows = n; sp.I = I;
  kernels::launch_swiglu(sp, stream_);
  launched();
  lin(act.p, n, I, down, Mat{}, y);
  sync();  // gu/act die here
}

void CudaBackend::print_moe_stamps() const {
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

}  // namespace ling::cuda_impl
