// Per-GPU footprint of a model spread over `tp` GPUs (the multi-GPU layout the CUDA engine targets):
//   tensor parallelism  attention heads split across ranks (each rank owns its heads' Lightning states and its
//                       query heads); GQA KV heads split while nkv ≥ tp, else replicated; MLA: the latent
//                       down-projections (kv_a_proj_with_mqa, q_a_proj) and the latent cache are replicated on
//                       every rank (one latent "head" serves all heads); dense FFN and shared expert split by
//                       columns then rows; lm_head split by vocabulary; embedding, norms and router replicated;
//   expert parallelism  routed experts partitioned over `ep` ranks (ep divides tp); each expert's columns split
//                       over the remaining tp/ep ranks;
//   DP attention        attention weights replicated and the batch split over the ranks instead: every
//                       sequence's cache lives on one rank only (the latent is no longer replicated).
// Counts come from tensor_schema(), so they agree with count_params(): Σ_ranks weights = total + replication.
// Communication per token (summed over layers, per rank, ring algorithms): TP all-reduce of the H-wide
// activations after attention and after the FFN, 2·(tp−1)/tp·H·act_bytes each; EP dispatch + combine of the
// k routed copies, 2·k·H·act_bytes·(ep−1)/ep; DP attention gathers and scatters the activations around each
// attention block instead of the attention all-reduce.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "ling/model/accounting.h"
#include "ling/model/config.h"

namespace ling {

struct ParallelPlan {
  int64_t tp = 1;             // GPUs
  int64_t ep = 1;             // expert-parallel ranks (divides tp)
  bool dp_attention = false;  // replicate attention, split the batch
};

// Throws one line naming the field when the plan does not fit the model (tp must divide the head counts and
// FFN widths — or, for GQA KV heads and Lightning GroupRMSNorm groups, be divided by them —, ep must divide tp
// and num_experts). The engine's tensor-parallel backend checks its plans with this too.
void check_plan(const ModelConfig& c, const ParallelPlan& p);

struct RankFootprint {
  double params = 0;                     // parameters held by one rank (the largest rank)
  double replicated_params = 0;          // of which replicated on every rank
  double kv_bytes_per_token = 0;         // softmax-layer cache per token of a sequence this rank holds
  double state_bytes_per_sequence = 0;   // Lightning states per sequence this rank holds
  double kv_replication = 1;             // copies of each token's softmax cache across the ranks
  int64_t ranks_per_sequence = 1;        // ranks holding a given sequence's caches (tp, or 1 with DP attention)
  double allreduce_bytes_per_token = 0;  // per rank
  double alltoall_bytes_per_token = 0;   // per rank
  std::vector<std::string> notes;
};
RankFootprint rank_footprint(const ModelConfig& c, const ParallelPlan& p, const CacheDtypes& d = {},
                             int64_t act_bytes = 2);

// Bytes one rank needs for `batch` sequences of `context` tokens with weights of `weight_bytes` per parameter.
double rank_bytes(const ModelConfig& c, const ParallelPlan& p, int64_t batch, int64_t context,
                  double weight_bytes = 2.0, const CacheDtypes& d = {});

// The attention mode the memory plan picks: TP attention unless the replicated caches of `batch` sequences
// at `context` tokens no longer fit `gpu_bytes` while DP attention does (or needs less memory and TP does not
// fit either). `reason` says why.
ParallelPlan choose_attention_mode(const ModelConfig& c, ParallelPlan p, int64_t batch, int64_t context,
                                   double gpu_bytes, double weight_bytes, std::string* reason,
                                   const CacheDtypes& d = {});

}  // namespace ling
