// Host weights of a model in f32, grouped per layer (architecture.md §4). Loaded once from a Checkpoint in any
// stored float dtype (F32/BF16/F16/F8 → f32) and checked against tensor_schema(): a missing, unexpected or
// wrongly shaped tensor, or a NaN/Inf value, is one ling::Error naming the tensor. Backends upload from here.
// Gate and up projections are fused at load ([2I, H]: gate rows first); experts are kept one matrix per expert.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "ling/core/dtype.h"
#include "ling/model/config.h"

namespace ling {
class Checkpoint;

// A row-major [rows, cols] f32 matrix (vectors have rows = 1). Empty when absent.
struct Mat {
  std::vector<float> v;
  int64_t rows = 0, cols = 0;
  bool empty() const { return v.empty(); }
  const float* data() const { return v.empty() ? nullptr : v.data(); }
};

struct ExpertWeights {
  Mat gate_up;  // [2·I_moe, H]
  Mat down;     // [H, I_moe]
};

struct LayerWeights {
  LayerSpec spec;
  Mat input_norm, post_norm;  // [H]
  // GQA and Lightning (prefix attention.)
  Mat qkv, qkv_bias;          // [(nh + 2·nkv)·hd, H] or [3·nh·hd, H]
  Mat q_norm, k_norm;         // [hd] (empty without use_qk_norm)
  Mat g_proj, g_norm;         // Lightning: [nh·hd, H], [nh·hd]
  Mat dense, dense_bias;      // [H, nh·hd] / [H, nh·d_v]
  // MLA
  Mat q_a, q_a_bias, q_a_norm, q_b;  // q LoRA: [r_q, H], [r_q], [r_q], [nh·d_qk, r_q]
  Mat q_proj, q_proj_bias;           // no q LoRA: [nh·d_qk, H], [nh·d_qk]
  Mat kv_a, kv_a_bias, kv_a_norm;    // [r_kv + d_rope, H], [r_kv + d_rope], [r_kv]
  Mat kv_b;                          // [nh·(d_nope + d_v), r_kv]
  // FFN
  Mat gate_up, down;                 // dense: [2I, H], [H, I]
  Mat router, router_bias;           // MoE: [E, H], [E]
  std::vector<ExpertWeights> experts;
  ExpertWeights shared;              // empty when num_shared_experts = 0
};

struct ModelWeights {
  Mat embed;    // [V, H]
  Mat norm;     // [H]
  Mat lm_head;  // [V, H] (the embedding when tied)
  std::vector<LayerWeights> layers;  // main stack only (MTP layers are not loaded)
  DType stored_dtype = DType::F32;   // dtype of the checkpoint's projection weights (before the f32 conversion)
};

// Load and check every tensor of `ckpt` against tensor_schema(config). Tensors of MTP layers are accepted and
// skipped; an MLX-style `attention.slope` or a `rotary_emb.inv_freq` buffer is ignored. An FP8 weight with a
// `<name>_scale_inv` tensor [ceil(out/128), ceil(in/128)] is dequantised block-wise (128×128 blocks).
// keep_expert(e): whether routed expert e is loaded (an expert-parallel rank reads only its experts; the others
// stay empty after their names and shapes are checked). Empty: every expert.
ModelWeights load_weights(const ModelConfig& config, const Checkpoint& ckpt,
                          const std::function<bool(int64_t expert)>& keep_expert = {});
// load_weights one layer at a time: every tensor is checked first (names, shapes, FP8 scales), then the
// embedding, final norm and LM head are read, then each main-stack layer is read, assembled and handed to
// on_layer (in order) before the next one is read — memory holds one full layer at a time. The returned
// ModelWeights has no layers. A non-finite value stops the load at its layer.
ModelWeights load_weights_streamed(const ModelConfig& config, const Checkpoint& ckpt,
                                   const std::function<bool(int64_t expert)>& keep_expert,
                                   const std::function<void(LayerWeights&& layer)>& on_layer);

}  // namespace ling
