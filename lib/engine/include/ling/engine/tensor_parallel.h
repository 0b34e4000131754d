// Tensor and expert parallelism as a Backend over `tp` rank backends (one per GPU; the CPU backend serves as
// the oracle). Each rank holds a slice of the weights (slice_for_rank): its attention heads (query heads,
// their KV heads — replicated when nkv < tp —, Lightning qkv/g_proj/g_norm rows, MLA q/kv_b rows; the MLA
// latent down-projections kv_a_proj_with_mqa and q_a_proj are replicated, so every rank keeps the whole latent
// cache), the columns of the dense output projections, FFN and shared-expert columns, and its routed experts
// (experts split over `ep` rank groups, each expert's columns over the tp/ep ranks of its group; the router is
// replicated and routes identically everywhere). Every rank keeps a replica of the residual stream (embedding,
// norms and residual adds run on every rank); a block's output is the sum of the ranks' partial outputs, left
// on every rank by the all-reduce; biases of the output projections are added by rank 0 only; the LM head runs
// on rank 0. The all-reduce is pluggable: a host sum for CPU ranks (the oracle), NCCL for CUDA ranks.
// When the Lightning GroupRMSNorm groups span ranks (group_norm_size < tp, e.g. Ling-2.5-1T at TP 8), each rank
// returns its unnormalised partial output and sums of squares and the group RMS is combined across the ranks of
// the group (host buffers: CPU ranks in this build).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <utility>
#include <vector>

#include "ling/engine/backend.h"
#include "ling/engine/weights.h"

namespace ling {

struct TpPlan {
  int64_t tp = 1;  // ranks
  int64_t ep = 1;  // expert-parallel groups (divides tp)
  bool replicate_lm_head = false;  // every rank holds the LM head (one process per rank picks its own tokens)
  bool dp_attention = false;  // attention replicated, sequences spread over the ranks (each sequence's caches
                              // live on one rank); the FFN stays tensor/expert parallel
};

// Throws one line naming the config field a plan does not divide (ling::check_plan of lib/model/parallel.h).
void check_tp_plan(const ModelConfig& c, const TpPlan& p);

struct RankModel {
  ModelConfig config;                          // rank-local head counts and widths
  std::shared_ptr<const ModelWeights> weights;  // rank-local slices (host copies)
  BackendOptions options;                      // base options + head_offset / total_heads
};
// Routed experts [first, first + count) held by `rank` (its expert-parallel group's share).
std::pair<int64_t, int64_t> rank_experts(const ModelConfig& c, const TpPlan& p, int64_t rank);

RankModel slice_for_rank(const ModelConfig& c, const ModelWeights& w, const TpPlan& p, int64_t rank,
                         const BackendOptions& base);
// The slices of several ranks cut as the layers arrive: each full layer is freed once every listed rank has its
// slice, so memory holds the slices plus one full layer. Equal to slice_for_rank for each rank.
class RankSlicer {
 public:
  RankSlicer(const ModelConfig& c, const TpPlan& p, std::vector<int64_t> ranks, const BackendOptions& base);
  void add_layer(LayerWeights&& layer);  // layers in order; the full layer is freed
  // The tensors outside the layers (embedding, final norm, LM head), then the rank models, in `ranks` order.
  std::vector<RankModel> finish(const ModelWeights& globals);
  // Every layer's full output bias (the TP backend adds it itself when Lightning norm groups span ranks).
  const std::vector<Mat>& dense_biases() const { return biases_; }

 private:
  ModelConfig config_;
  TpPlan plan_;
  std::vector<int64_t> ranks_;
  std::vector<RankModel> models_;
  std::vector<std::shared_ptr<ModelWeights>> outs_;
  std::vector<Mat> biases_;
};
// RankSlicer over a loaded model, which is emptied as it goes (its layers freed, embedding and LM head dropped).
std::vector<RankModel> slice_for_ranks(const ModelConfig& c, ModelWeights& w, const TpPlan& p,
                                       const std::vector<int64_t>& ranks, const BackendOptions& base);
// Loads a TP backend (make_tp_backend) straight from a checkpoint (load_weights_streamed + RankSlicer): host
// memory holds this process's ranks' slices plus one full layer, never the whole model.
void load_tp_streamed(Backend& tp, const ModelConfig& c, const Checkpoint& ckpt,
                      const std::function<bool(int64_t expert)>& keep_expert = {});

using RankBackendFactory = std::function<std::unique_ptr<Backend>(int64_t rank, const BackendOptions& options)>;
// Sums the ranks' buffers (one per rank, same shape) and leaves the sum in every one of them.
using AllReduce = std::function<void(std::vector<Buffer*>& parts)>;
// all_reduce empty: a host sum (rank backends whose buffers are host memory, i.e. CPU ranks).
// local_ranks: the ranks this process drives (empty: all of them, one process for the whole group).
std::unique_ptr<Backend> make_tp_backend(const TpPlan& p, const BackendOptions& base, RankBackendFactory factory,
                                         AllReduce all_reduce = {}, std::vector<int64_t> local_ranks = {});

// Time spent in the all-reduce calls of a TP backend since it was made: host wall seconds and calls (zero for
// any other backend). `ling bench --tp` reports it as the share of step time spent communicating.
struct TpCommStats {
  int64_t calls = 0;
  double seconds = 0.0;
};
TpCommStats tp_comm_stats(const Backend& backend);

}  // namespace ling
