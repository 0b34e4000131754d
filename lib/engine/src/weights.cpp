// Weight loading (architecture.md §4): checkpoint tensors → f32 host matrices, checked against tensor_schema().
// FP8 weights are dequantised with their `_scale_inv` 128×128 block scales when present (DeepSeek layout).
// One pass over the schema (presence, shape, FP8 scales), one over the checkpoint (unexpected names), then layer
// by layer: read (finite values checked), assemble (gate‖up fusion), hand over. Every error names the tensor and
// the checkpoint path.
#include <omp.h>
#include <sys/mman.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <exception>
#include <map>
#include <set>

#include "ling/core/error.h"
#include "ling/core/log.h"
#include "ling/core/safetensors.h"
#include "ling/engine/weights.h"
#include "ling/model/schema.h"

namespace ling {
namespace {

bool ignorable(const std::string& name) {
  auto ends = [&](const std::string& s) { return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0; };
  return ends(".attention.slope") || ends("rotary_emb.inv_freq");
}

// Large allocations as transparent huge pages where the kernel allows it (madvise mode): 512× fewer page faults
// when the f32 copies are first written (a hint; nothing changes where it is refused).
void advise_huge_pages(void* p, size_t bytes) {
  constexpr uintptr_t kHuge = uintptr_t(2) << 20;
  if (bytes < 2 * kHuge) return;
  const uintptr_t b = (reinterpret_cast<uintptr_t>(p) + kHuge - 1) & ~(kHuge - 1);
  const uintptr_t e = (reinterpret_cast<uintptr_t>(p) + bytes) & ~(kHuge - 1);
  if (e > b) madvise(reinterpret_cast<void*>(b), e - b, MADV_HUGEPAGE);
}

// Tensor → f32 Mat with every value checked finite (the first non-finite one, by flat index, is reported). Capacity
// for `extra` more values is reserved (gate rows keep room for their up rows: fuse_rows then copies only those).
// Large tensors are converted by all threads when the caller is not already running in parallel.
Mat to_mat(const TensorInfo& t, const std::string& where, size_t extra = 0) {
  Mat m;
  if (t.shape.size() == 1) { m.rows = 1; m.cols = t.shape[0]; }
  else if (t.shape.size() == 2) { m.rows = t.shape[0]; m.cols = t.shape[1]; }
  else LING_THROW(where, ": tensor '", t.name, "': expected 1 or 2 dimensions, got ", t.shape_str());
  LING_CHECK(t.dtype != DType::BOOL, where, ": tensor '", t.name, "': BOOL cannot be read as numbers");
  const size_t n = size_t(t.numel()), es = dtype_size(t.dtype);
  m.v.reserve(n + extra);
  advise_huge_pages(m.v.data(), sizeof(float) * (n + extra));
  m.v.resize(n);
  constexpr size_t kPiece = size_t(1) << 20;
  const int64_t pieces = int64_t((n + kPiece - 1) / kPiece);
  const auto* src = reinterpret_cast<const unsigned char*>(t.data);
  float* dst = m.v.data();
  size_t first_bad = n;
#pragma omp parallel for schedule(dynamic, 1) reduction(min : first_bad) if (pieces > 8 && !omp_in_parallel())
  for (int64_t i = 0; i < pieces; ++i) {
    const size_t b = size_t(i) * kPiece, len = std::min(kPiece, n - b);
    convert_to_f32(t.dtype, src + b * es, dst + b, len);
    for (size_t j = b; j < b + len; ++j)
      if (!std::isfinite(dst[j])) { first_bad = std::min(first_bad, j); break; }
  }
  if (first_bad < n)
    LING_THROW(where, ": tensor '", t.name, "': non-finite value ", m.v[first_bad], " at flat index ", first_bad);
  return m;
}

// FP8 weights with DeepSeek-style block scales: `<name>_scale_inv` [ceil(out/128), ceil(in/128)] multiplies each
// 128×128 block of the dequantised weight.
void apply_block_scale(Mat& m, const TensorInfo& w, const TensorInfo& s, const std::string& where) {
  const int64_t B = 128;
  const std::vector<int64_t> want = {(m.rows + B - 1) / B, (m.cols + B - 1) / B};
  LING_CHECK(w.shape.size() == 2 && s.shape == want, where, ": tensor '", s.name, "': shape ", s.shape_str(),
             " != expected [", want[0], ", ", want[1], "] (128x128 blocks of '", w.name, "')");
  const std::vector<float> sc = s.to_f32();
  for (int64_t r = 0; r < m.rows; ++r)
    for (int64_t c = 0; c < m.cols; ++c) m.v[r * m.cols + c] *= sc[(r / B) * want[1] + c / B];
  for (size_t i = 0; i < m.v.size(); ++i)
    LING_CHECK(std::isfinite(m.v[i]), where, ": tensor '", w.name, "': non-finite value after block scaling at flat index ", i);
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); ++i) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

struct Pool {
  std::map<std::string, Mat> mats;
  std::string where;
  Mat take(const std::string& name) {
    auto it = mats.find(name);
    LING_CHECK(it != mats.end(), where, ": missing tensor '", name, "'");
    Mat m = std::move(it->second);
    mats.erase(it);
    return m;
  }
  Mat take_opt(const std::string& name) {
    auto it = mats.find(name);
    if (it == mats.end()) return {};
    Mat m = std::move(it->second);
    mats.erase(it);
    return m;
  }
};

Mat fuse_rows(Mat a, const Mat& b) {
  a.v.insert(a.v.end(), b.v.begin(), b.v.end());
  a.rows += b.rows;
  return a;
}

}  // namespace

namespace {
// Routed-expert index of a tensor name "model.layers.L.mlp.experts.E.…", or −1.
int64_t expert_of(const std::string& name) {
  const std::string key = ".mlp.experts.";
  const size_t at = name.find(key);
  if (at == std::string::npos) return -1;
  const size_t b = at + key.size(), e = name.find('.', b);
  if (e == std::string::npos || e == b) return -1;
  for (size_t i = b; i < e; ++i)
    if (name[i] < '0' || name[i] > '9') return -1;
  return std::stoll(name.substr(b, e - b));
}
}  // namespace

ModelWeights load_weights_streamed(const ModelConfig& config, const Checkpoint& ckpt,
                                   const std::function<bool(int64_t expert)>& keep_expert,
                                   const std::function<void(LayerWeights&& layer)>& on_layer) {
  const std::string where = ckpt.path();
  Pool pool{{}, where};
  std::set<std::string> known;
  DType stored_dtype = DType::F32;
  bool stored_set = false;
  // Pass 1: every tensor checked (presence, shape, FP8 scales); what to load is listed per layer (globals: -1).
  struct ToLoad {
    const TensorInfo* t;
    const TensorInfo* scale;
  };
  std::map<int, std::vector<ToLoad>> by_layer;
  for (const TensorSpec& spec : tensor_schema(config, /*include_mtp=*/true)) {
    known.insert(spec.name);
    const bool mtp = spec.layer >= config.num_hidden_layers;
    const TensorInfo* t = ckpt.find(spec.name);
    if (!t) {
      LING_CHECK(!spec.required || mtp, where, ": missing tensor '", spec.name, "' (expected shape ", shape_str(spec.shape), ")");
      continue;
    }
    LING_CHECK(t->shape == spec.shape, where, ": tensor '", spec.name, "': shape ", t->shape_str(), " != expected ",
               shape_str(spec.shape));
    const TensorInfo* scale = ckpt.find(spec.name + "_scale_inv");
    if (scale) {
      known.insert(scale->name);
      LING_CHECK(t->dtype == DType::F8_E4M3 || t->dtype == DType::F8_E5M2, where, ": tensor '", scale->name,
                 "' scales '", spec.name, "', which is ", dtype_name(t->dtype), ", not FP8");
    }
    if (mtp) continue;
    if (keep_expert) {
      const int64_t e = expert_of(spec.name);
      if (e >= 0 && !keep_expert(e)) continue;  // another rank's expert: checked, not loaded
    }
    if (spec.role == TensorRole::Linear && !stored_set) {
      stored_dtype = t->dtype;
      stored_set = true;
    }
    by_layer[spec.layer].push_back({t, scale});
  }
  for (const std::string& name : ckpt.names()) {
    if (known.count(name)) continue;
    if (ignorable(name)) { log_info(where, ": ignoring tensor '", name, "'"); continue; }
    LING_THROW(where, ": unexpected tensor '", name, "' (not in the schema of ", config.architecture, ")");
  }
  // Pass 2, one layer at a time: its tensors → f32 (finite values checked), assembled, handed over.
  // The tensors of a layer are read by all threads (each one's pages first touched by the thread that fills
  // them); an error is the first failing tensor's, in schema order, whatever the threads' timing.
  auto read_layer = [&](int layer) {
    const std::vector<ToLoad>& xs = by_layer[layer];
    std::vector<Mat> mats(xs.size());
    std::vector<std::exception_ptr> errors(xs.size());
#pragma omp parallel for schedule(dynamic, 1)
    for (int64_t i = 0; i < int64_t(xs.size()); ++i) {
      try {
        const ToLoad& x = xs[size_t(i)];
        const bool gate = x.t->name.ends_with(".gate_proj.weight");
        mats[size_t(i)] = to_mat(*x.t, where, gate ? size_t(x.t->numel()) : 0);
        if (x.scale) apply_block_scale(mats[size_t(i)], *x.t, *x.scale, where);
      } catch (...) {
        errors[size_t(i)] = std::current_exception();
      }
    }
    for (const std::exception_ptr& e : errors)
      if (e) std::rethrow_exception(e);
    for (size_t i = 0; i < xs.size(); ++i) pool.mats[xs[i].t->name] = std::move(mats[i]);
    by_layer.erase(layer);
  };
  auto leftovers = [&] {
    for (const auto& [name, mat] : pool.mats)
      LING_THROW(where, ": tensor '", name, "' is in the schema but not used by the engine");
  };

  read_layer(-1);
  ModelWeights w;
  w.embed = pool.take("model.word_embeddings.weight");
  w.norm = pool.take("model.norm.weight");
  w.lm_head = config.tie_word_embeddings ? pool.take_opt("lm_head.weight") : pool.take("lm_head.weight");
  if (w.lm_head.empty()) w.lm_head = w.embed;
  leftovers();
  for (int64_t il = 0; il < config.num_hidden_layers; ++il) {
    read_layer(int(il));
    const LayerSpec& ls = config.layers.at(il);
    const std::string p = "model.layers." + std::to_string(il) + ".";
    const std::string a = p + "attention.";
    LayerWeights L;
    L.spec = ls;
    L.input_norm = pool.take(p + "input_layernorm.weight");
    L.post_norm = pool.take(p + "post_attention_layernorm.weight");
    if (ls.attn == AttnKind::MLA) {
      if (config.q_lora_rank > 0) {
        L.q_a = pool.take(a + "q_a_proj.weight");
        L.q_a_bias = pool.take_opt(a + "q_a_proj.bias");
        L.q_a_norm = pool.take(a + "q_a_layernorm.weight");
        L.q_b = pool.take(a + "q_b_proj.weight");
      } else {
        L.q_proj = pool.take(a + "q_proj.weight");
        L.q_proj_bias = pool.take_opt(a + "q_proj.bias");
      }
      L.kv_a = pool.take(a + "kv_a_proj_with_mqa.weight");
      L.kv_a_bias = pool.take_opt(a + "kv_a_proj_with_mqa.bias");
      L.kv_a_norm = pool.take(a + "kv_a_layernorm.weight");
      L.kv_b = pool.take(a + "kv_b_proj.weight");
    } else {
      L.qkv = pool.take(a + "query_key_value.weight");
      L.qkv_bias = pool.take_opt(a + "query_key_value.bias");
      if (config.use_qk_norm) {
        L.q_norm = pool.take(a + "query_layernorm.weight");
        L.k_norm = pool.take(a + "key_layernorm.weight");
      }
      if (ls.attn == AttnKind::Lightning) {
        L.g_proj = pool.take(a + "g_proj.weight");
        L.g_norm = pool.take(a + "g_norm.weight");
      }
    }
    L.dense = pool.take(a + "dense.weight");
    L.dense_bias = pool.take_opt(a + "dense.bias");
    const std::string m = p + "mlp.";
    if (ls.ffn == FfnKind::Dense) {
      L.gate_up = fuse_rows(pool.take(m + "gate_proj.weight"), pool.take(m + "up_proj.weight"));
      L.down = pool.take(m + "down_proj.weight");
    } else {
      L.router = pool.take(m + "gate.weight");
      L.router_bias = pool.take_opt(m + "gate.expert_bias");
      if (L.router_bias.empty()) L.router_bias = pool.take_opt(m + "gate.e_score_correction_bias");
      if (L.router_bias.empty()) L.router_bias = pool.take_opt(m + "experts.expert_bias");
      // Experts held by another rank stay empty; the gate‖up fusions run on all threads.
      L.experts.resize(size_t(config.num_experts));
      std::vector<Mat> ups(size_t(config.num_experts));
      for (int64_t e = 0; e < config.num_experts; ++e) {
        if (keep_expert && !keep_expert(e)) continue;
        const std::string ep = m + "experts." + std::to_string(e) + ".";
        L.experts[size_t(e)].gate_up = pool.take(ep + "gate_proj.weight");
        ups[size_t(e)] = pool.take(ep + "up_proj.weight");
        L.experts[size_t(e)].down = pool.take(ep + "down_proj.weight");
      }
#pragma omp parallel for schedule(dynamic, 4)
      for (int64_t e = 0; e < config.num_experts; ++e) {
        Mat& gu = L.experts[size_t(e)].gate_up;
        if (!gu.empty()) gu = fuse_rows(std::move(gu), ups[size_t(e)]);
        ups[size_t(e)] = Mat{};
      }
      if (config.num_shared_experts > 0) {
        L.shared.gate_up = fuse_rows(pool.take(m + "shared_experts.gate_proj.weight"),
                                     pool.take(m + "shared_experts.up_proj.weight"));
        L.shared.down = pool.take(m + "shared_experts.down_proj.weight");
      }
    }
    leftovers();
    on_layer(std::move(L));
  }
  w.stored_dtype = stored_dtype;
  return w;
}

ModelWeights load_weights(const ModelConfig& config, const Checkpoint& ckpt,
                          const std::function<bool(int64_t expert)>& keep_expert) {
  std::vector<LayerWeights> layers;
  ModelWeights w = load_weights_streamed(config, ckpt, keep_expert,
                                         [&](LayerWeights&& L) { layers.push_back(std::move(L)); });
  w.layers = std::move(layers);
  return w;
}

}  // namespace ling
