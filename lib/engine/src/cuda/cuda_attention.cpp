// CudaBackend (cuda_backend.h): softmax attention layers — GQA (QK-norm + RoPE, K/V cache rows, split-KV decode
// attention, causal flash prefill) and MLA (latent cache; the absorbed decode through kernels/mla at the real dims or
// two fp32 GEMMs, the non-absorbed prefill).
#include "cuda_backend.h"

namespace ling::cuda_impl {

void CudaBackend::attn_gqa(int layer, const Buffer& x, const BatchPlan& plan, Buffer& out) {
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
                             nh, nkv, hd, hd, float(1.0 / std::sqrt(double(hd))), ws.p, stream_, sw_.gqa_wide);
      launched();
    }
    lin(o.p, n, nh * hd, L.dense, L.dense_bias, out.data);
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
  lin(o.p, n, nh * hd, L.dense, L.dense_bias, out.data);
  sync();
}

void CudaBackend::attn_mla(int layer, const Buffer& x, const BatchPlan& plan, Buffer& out) {
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
    lin(o.p, n, nh * dv, L.dense, L.dense_bias, out.data);
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
    lin(o.p, n, nh * dv, L.dense, L.dense_bias, out.data);
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
  lin(o.p, n, nh * dv, L.dense, L.dense_bias, out.data);
  sync();
}

int64_t CudaBackend::latent_floats() const {
  const int64_t lc = cfg_.kv_lora_rank + cfg_.qk_rope_head_dim;
  return mla_paged_ ? lc / 2 : lc;
}

void CudaBackend::mla_paged_step(int layer, const float* q, const float* ckv, const int64_t* pos, const BatchPlan& plan,
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

void CudaBackend::flash_attention(const float* q, int64_t ldq, const float* k, int64_t ldk, const float* v, int64_t ldv,
                                  float* o, int64_t ldo, int64_t T, int64_t S, int64_t pos0, int64_t nh, int64_t nkv,
                                  int64_t dk, int64_t dv, float scale) {
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

void CudaBackend::qk_norm_rope(const LayerWeights& L, float* qkv, int64_t n, int64_t width, int64_t nq, int64_t nk,
                               const int64_t* pos) {
  QkNormRopeParams p;
  p.x = qkv; p.pos = pos; p.inv_freq = inv_freq_.p;
  p.wq = L.q_norm.empty() ? nullptr : W(L.q_norm); p.wk = L.k_norm.empty() ? nullptr : W(L.k_norm);
  p.rows = n; p.nq = nq; p.nk = nk; p.hd = cfg_.head_dim; p.ld = width; p.rope_dim = cfg_.rope_dim();
  p.eps = cfg_.rms_norm_eps; p.attention_factor = freqs_.attention_factor;
  kernels::launch_qk_norm_rope(p, stream_);
  launched();
}

void CudaBackend::latent_norm(float* x, const Mat& w, int64_t rows, int64_t r, int64_t ld) {
  RmsNormParams p;
  p.x = x; p.y = x; p.w = W(w); p.rows = rows; p.dim = r; p.ldx = p.ldy = ld; p.eps = 1e-6;
  kernels::launch_rms_norm(p, stream_);
  launched();
}

void CudaBackend::mla_rope(float* x, const int64_t* pos, int64_t rows, int64_t heads, int64_t row_stride,
                           int64_t head_stride, int64_t rd) {
  RopeParams p;
  p.x = x; p.pos = pos; p.inv_freq = inv_freq_.p; p.rows = rows; p.heads = heads; p.row_stride = row_stride;
  p.head_stride = head_stride; p.rope_dim = rd; p.attention_factor = freqs_.attention_factor; p.interleaved = true;
  kernels::launch_rope(p, stream_);
  launched();
}

}  // namespace ling::cuda_impl
