// Per-GPU footprint of tensor / expert / DP-attention layouts (parallel.h), from tensor_schema().
#include "ling/model/parallel.h"

#include <algorithm>
#include <cmath>

#include "ling/core/error.h"
#include "ling/model/schema.h"

namespace ling {

namespace {

bool ends_with(const std::string& s, const std::string& t) {
  return s.size() >= t.size() && s.compare(s.size() - t.size(), t.size(), t) == 0;
}
bool has(const std::string& s, const std::string& t) { return s.find(t) != std::string::npos; }

}  // namespace

void check_plan(const ModelConfig& c, const ParallelPlan& p) {
  LING_CHECK(p.tp >= 1, "--tp must be at least 1");
  LING_CHECK(p.ep >= 1 && p.tp % p.ep == 0, "--ep ", p.ep, " must divide --tp ", p.tp);
  const int64_t nh = c.num_attention_heads, nkv = c.num_key_value_heads;
  bool gqa = false, lightning = false;
  for (const LayerSpec& l : c.layers) {
    gqa = gqa || (!l.mtp && l.attn == AttnKind::GQA);
    lightning = lightning || (!l.mtp && l.attn == AttnKind::Lightning);
  }
  if (!p.dp_attention) {
    LING_CHECK(nh % p.tp == 0, c.source, ": num_attention_heads ", nh, " is not divisible by --tp ", p.tp);
    if (gqa)
      LING_CHECK(nkv >= p.tp ? nkv % p.tp == 0 : p.tp % nkv == 0, c.source, ": num_key_value_heads ", nkv,
                 " and --tp ", p.tp, " do not divide one another");
    if (lightning)
      LING_CHECK(c.group_norm_size % p.tp == 0 || p.tp % c.group_norm_size == 0, c.source, ": group_norm_size ",
                 c.group_norm_size, " and --tp ", p.tp, " do not divide one another (each rank must hold whole "
                 "GroupRMSNorm groups or part of one)");
  }
  LING_CHECK(c.intermediate_size % p.tp == 0, c.source, ": intermediate_size ", c.intermediate_size,
             " is not divisible by --tp ", p.tp);
  if (c.num_experts > 0) {
    LING_CHECK(c.num_experts % p.ep == 0, c.source, ": num_experts ", c.num_experts, " is not divisible by --ep ",
               p.ep);
    LING_CHECK(c.moe_intermediate_size % (p.tp / p.ep) == 0, c.source, ": moe_intermediate_size ",
               c.moe_intermediate_size, " is not divisible by tp/ep = ", p.tp / p.ep);
    LING_CHECK(c.shared_expert_width() % p.tp == 0 || c.num_shared_experts == 0, c.source,
               ": the shared expert width ", c.shared_expert_width(), " is not divisible by --tp ", p.tp);
  }
}

RankFootprint rank_footprint(const ModelConfig& c, const ParallelPlan& p, const CacheDtypes& d, int64_t act_bytes) {
  check_plan(c, p);
  RankFootprint f;
  const double tp = double(p.tp), ep = double(p.ep);
  const int64_t hd = c.head_dim;
  // KV heads a rank holds in a GQA layer (replicated when fewer than tp).
  const double kv_per_rank = std::max(1.0, double(c.num_key_value_heads) / tp);
  for (const TensorSpec& s : tensor_schema(c, false)) {
    double n = 1;
    for (int64_t x : s.shape) n *= double(x);
    const std::string& m = s.name;
    double share = 1.0;  // fraction of the tensor one rank holds
    bool replicated = false;
    const bool attn = has(m, ".attention.");
    const AttnKind kind = s.layer >= 0 ? c.layers[size_t(s.layer)].attn : AttnKind::GQA;
    if (s.role == TensorRole::Norm || s.role == TensorRole::Router || s.role == TensorRole::RouterBias ||
        m == "model.word_embeddings.weight" || m == "model.embed_tokens.weight" || ends_with(m, "dense.bias")) {
      replicated = !(attn && has(m, "g_norm") && !p.dp_attention);
      if (!replicated) share = 1.0 / tp;
    } else if (m == "lm_head.weight") {
      share = 1.0 / tp;
    } else if (attn && p.dp_attention) {
      replicated = true;
    } else if (attn && (has(m, "kv_a_proj_with_mqa") || has(m, "q_a_proj"))) {
      replicated = true;
    } else if (attn && kind == AttnKind::GQA && has(m, "query_key_value")) {
      const double rows = s.shape[0];
      const double q = double(c.num_attention_heads * hd) / tp, kv = 2.0 * kv_per_rank * double(hd);
      share = (q + kv) / rows;
    } else if (has(m, ".experts.")) {
      share = 1.0 / tp;  // E/ep experts per rank, each split over tp/ep ranks
    } else {
      share = 1.0 / tp;  // heads, FFN columns/rows, shared expert
    }
    const double held = replicated ? n : n * share;
    f.params += held;
    if (replicated) f.replicated_params += n;
  }
  // Caches.
  const LayerCounts lc = count_layers(c);
  const double gqa_full = 2.0 * double(c.num_key_value_heads * hd), mla = double(c.kv_lora_rank + c.qk_rope_head_dim);
  if (p.dp_attention) {
    f.kv_bytes_per_token = (lc.gqa * gqa_full + lc.mla * mla) * double(d.kv_bytes);
    f.state_bytes_per_sequence = double(lc.lightning) * double(c.num_attention_heads * hd * hd * d.state_bytes);
    f.ranks_per_sequence = 1;
    f.kv_replication = 1;
  } else {
    const double gqa_rank = 2.0 * kv_per_rank * double(hd);
    f.kv_bytes_per_token = (lc.gqa * gqa_rank + lc.mla * mla) * double(d.kv_bytes);
    f.state_bytes_per_sequence = double(lc.lightning) * double(c.num_attention_heads * hd * hd * d.state_bytes) / tp;
    f.ranks_per_sequence = p.tp;
    const double full = lc.gqa * gqa_full + lc.mla * mla;
    f.kv_replication = full > 0 ? (lc.gqa * gqa_rank + lc.mla * mla) * tp / full : 1.0;
    if (lc.mla && p.tp > 1)
      f.notes.push_back(cat("MLA latent cache replicated on all ", p.tp, " ranks (", int64_t(mla),
                            " values/token/layer each); DP attention stores it once"));
    if (lc.gqa && c.num_key_value_heads < p.tp)
      f.notes.push_back(cat("GQA: ", c.num_key_value_heads, " KV heads < tp ", p.tp, ": each KV head replicated ",
                            p.tp / c.num_key_value_heads, "x"));
    if (lc.lightning && c.group_norm_size > 0) {
      const double group = double(c.num_attention_heads * hd) / double(c.group_norm_size);
      const double per_rank = double(c.num_attention_heads * hd) / tp;
      if (per_rank < group)
        f.notes.push_back(cat("Lightning GroupRMSNorm groups (", int64_t(group), " channels) span ",
                              int64_t(group / per_rank), " ranks: one extra all-reduce of the group sums of squares per layer"));
    }
  }
  // Communication per token per rank.
  const double H = double(c.hidden_size), L = double(c.num_hidden_layers);
  if (p.tp > 1) {
    const double ring = 2.0 * (tp - 1.0) / tp * H * double(act_bytes);
    f.allreduce_bytes_per_token = (p.dp_attention ? 1.0 : 2.0) * L * ring;  // DP attention: FFN all-reduce only
    if (p.dp_attention) f.allreduce_bytes_per_token += L * ring;  // gather + scatter around attention
  }
  if (p.ep > 1 && c.num_experts > 0)
    f.alltoall_bytes_per_token = double(lc.moe_ffn) * 2.0 * double(c.num_experts_per_tok) * H * double(act_bytes) *
                                 (ep - 1.0) / ep;
  return f;
}

double rank_bytes(const ModelConfig& c, const ParallelPlan& p, int64_t batch, int64_t context, double weight_bytes,
                  const CacheDtypes& d) {
  const RankFootprint f = rank_footprint(c, p, d);
  const double seqs = p.dp_attention ? std::ceil(double(batch) / double(p.tp)) : double(batch);
  return f.params * weight_bytes + seqs * (double(context) * f.kv_bytes_per_token + f.state_bytes_per_sequence);
}

ParallelPlan choose_attention_mode(const ModelConfig& c, ParallelPlan p, int64_t batch, int64_t context,
                                   double gpu_bytes, double weight_bytes, std::string* reason, const CacheDtypes& d) {
  ParallelPlan tpp = p, dpp = p;
  tpp.dp_attention = false;
  dpp.dp_attention = true;
  const double bt = rank_bytes(c, tpp, batch, context, weight_bytes, d);
  const double bd = rank_bytes(c, dpp, batch, context, weight_bytes, d);
  const bool tp_fits = bt <= gpu_bytes, dp_fits = bd <= gpu_bytes;
  ParallelPlan out = tpp;
  std::string why;
  if (tp_fits) {
    why = cat("TP attention fits (", bt / 1e9, " GB of ", gpu_bytes / 1e9, " GB per GPU)");
  } else if (dp_fits) {
    out = dpp;
    why = cat("TP attention needs ", bt / 1e9, " GB per GPU (replicated caches), DP attention ", bd / 1e9, " GB: DP");
  } else {
    out = bd < bt ? dpp : tpp;
    why = cat("neither fits ", gpu_bytes / 1e9, " GB per GPU (TP ", bt / 1e9, " GB, DP ", bd / 1e9, " GB)");
  }
  if (reason) *reason = why;
  return out;
}

}  // namespace ling
