// Causal flash attention for prefill (architecture.md §2.5 step 4 GQA, §2.7 MLA prefill non-absorbed) on sm_90a:
// tiled over queries and keys with an online softmax, so nothing of size T·S is ever stored. Semantics are those
// of ling::ref::attention with qpos[i] = q_pos0 + i:
//   query i (absolute position q_pos0 + i) sees keys j ≤ q_pos0 + i;  query head h uses KV head h / (nh / nkv);
//   o[i, h] = softmax_j(scale · q[i, h] · k[j, g]) · v[j, g]            (fp32 softmax, fp32 output)
// Two paths, picked by `dtype`:
//   BF16: bf16 q/k/v on tensor cores (mma.sync m16n8k16, fp32 accumulation; the softmax weights enter P·V as
//         bf16), 128 or 256 queries per CTA, keys in tiles of 32 or 64; key tiles wholly above the diagonal never
//         visited. dk ∈ {64, 128, 192}, dv ∈ {64, 128} (flash_attention_bf16_dims). Outputs to bf16 accuracy.
//   F32:  fp32 q/k/v on CUDA cores, any dk, dv in 1..256; fp32-accurate (the engine's accuracy oracle).
// launch_flash_attention throws ling::Error (one line naming the field) for any unsupported shape, stride,
// alignment or dtype before it touches the device; the tests convert these params to ref::AttentionParams
// (tests/kernels/attention_params.h).
#pragma once
#include <cuda_runtime_api.h>

#include <cstdint>

#include "ling/core/dtype.h"

namespace ling::kernels {

struct FlashAttentionParams {
  // Element type of q/k/v: DType::BF16 (uint16_t bits) or DType::F32. The output is always fp32.
  const void* q = nullptr;  // [T, nh, dk]: query row i, head h at q + i·ldq + h·dk (RoPE already applied)
  const void* k = nullptr;  // [S, nkv, dk]: key row j (absolute position j), KV head g at k + j·ldk + g·dk
  const void* v = nullptr;  // [S, nkv, dv]: value row j, KV head g at v + j·ldv + g·dv
  float* o = nullptr;       // fp32 [T, nh, dv]: output row i, head h at o + i·ldo + h·dv (must not overlap q/k/v)
  // Row strides in elements; 0 = dense (nh·dk, nkv·dk, nkv·dv, nh·dv). A stride must be ≥ its dense value
  // (q/k/v may be views into a fused qkv buffer).
  //   BF16 path: q/k/v pointers 16-byte aligned and ldq/ldk/ldv multiples of 8; o 8-byte aligned, ldo even.
  //   F32 path: no alignment requirement beyond the element's.
  int64_t ldq = 0, ldk = 0, ldv = 0, ldo = 0;
  int64_t T = 0;       // query rows (T = 0: nothing to do)
  int64_t S = 0;       // key/value rows in k and v; must satisfy S ≥ q_pos0 + T (keys beyond q_pos0 + T − 1
                       // are never read)
  int64_t q_pos0 = 0;  // absolute position of query row 0 (chunked prefill: tokens already in the cache)
  int64_t nh = 0;      // query heads
  int64_t nkv = 0;     // key/value heads; divides nh (nkv = nh: MLA prefill / MHA)
  int64_t dk = 0;      // q/k head dim (MLA: 128 nope + 64 rope = 192)
  int64_t dv = 0;      // v/o head dim
  float scale = 1.0f;  // softmax scale (1/√dk, times mscale² under YaRN)
  DType dtype = DType::BF16;
  // BF16 path tuning (tests and benches cover every layout; 0 = the default, the fastest measured on an H100):
  //   warp_rows: query rows per warp, 32 (each K/V fragment feeds two MMAs, keys in tiles of 32) or 16 (Q held in
  //              registers, keys in tiles of 64); default 32.
  //   cta_rows:  query rows per CTA, 128 or 256 (256: each K/V tile loaded once for 256 rows; warp_rows 32 only);
  //              default 256 when dk > 128 (MLA), else 128.
  // Ignored by the F32 path.
  int warp_rows = 0;
  int cta_rows = 0;
};

// True when the BF16 tensor-core path has a kernel for (dk, dv).
bool flash_attention_bf16_dims(int64_t dk, int64_t dv);

// Keys per tile of the BF16 path for these params (64 at warp_rows 16, else 32). Precision model of that path:
// scores s in fp32 from exact bf16 products, x = s·scale·log2(e); per key tile, weights p = 2^(x − m) against the
// running row maximum m enter P·V rounded to bf16 and the normaliser sums them unrounded (fp32). The tests'
// reference follows this model (test_flash_attention.cpp); against exact softmax weights the bf16 rounding costs
// up to ~1.5e-3·max|v| absolute where a few keys carry a row.
int64_t flash_attention_key_tile(const FlashAttentionParams& p);

// Checks p (throws ling::Error, no device call) and launches on `stream`; asynchronous, no workspace.
void launch_flash_attention(const FlashAttentionParams& p, cudaStream_t stream);

}  // namespace ling::kernels
