// launch_flash_attention (attention.h): checks every field on the host (one ling::Error line per problem, before
// any device call), resolves dense strides, and dispatches to the BF16 tensor-core path (flash_bf16.cu) or the
// F32 CUDA-core path (flash_f32.cu).
#include <cstdint>
#include <limits>

#include "attention/flash_attention.cuh"
#include "ling/core/error.h"
#include "ling/kernels/attention.h"

namespace ling::kernels {

bool flash_attention_bf16_dims(int64_t dk, int64_t dv) {
  return dk > 0 && dk <= 256 && dv > 0 && dv <= 256 && flash::bf16_dims_supported(int(dk), int(dv));
}

int64_t flash_attention_key_tile(const FlashAttentionParams& p) { return flash::key_tile(p.warp_rows); }

void launch_flash_attention(const FlashAttentionParams& p, cudaStream_t stream) {
  constexpr const char* ctx = "flash attention: ";
  LING_CHECK(p.dtype == DType::BF16 || p.dtype == DType::F32, ctx, "dtype ", dtype_name(p.dtype),
             " is not supported (BF16 or F32)");
  const bool bf16 = p.dtype == DType::BF16;
  LING_CHECK(p.T >= 0, ctx, "T = ", p.T, " is negative");
  LING_CHECK(p.q_pos0 >= 0, ctx, "q_pos0 = ", p.q_pos0, " is negative");
  LING_CHECK(p.S >= p.q_pos0 + p.T, ctx, "S = ", p.S, " keys but the last query sits at position ",
             p.q_pos0 + p.T - 1, " (need S >= q_pos0 + T)");
  LING_CHECK(p.S <= std::numeric_limits<int32_t>::max(), ctx, "S = ", p.S, " is out of range (at most 2^31 - 1)");
  LING_CHECK(p.nh >= 1 && p.nkv >= 1 && p.nh % p.nkv == 0, ctx, "nh = ", p.nh,
             " query heads are not a multiple of nkv = ", p.nkv, " kv heads");
  LING_CHECK(p.nh <= std::numeric_limits<int32_t>::max(), ctx, "nh = ", p.nh, " is out of range");
  if (bf16)
    LING_CHECK(flash_attention_bf16_dims(p.dk, p.dv), ctx, "the BF16 path has no kernel for dk = ", p.dk,
               ", dv = ", p.dv, " (dk in {64, 128, 192}, dv in {64, 128}; use F32 for other dims)");
  else
    LING_CHECK(p.dk >= 1 && p.dk <= 256 && p.dv >= 1 && p.dv <= 256, ctx, "dk = ", p.dk, ", dv = ", p.dv,
               " (the F32 path takes 1..256)");
  if (p.T == 0) return;
  LING_CHECK(p.q && p.k && p.v && p.o, ctx, "a null q/k/v/o pointer");
  flash::Args a{};
  a.q = p.q, a.k = p.k, a.v = p.v, a.o = p.o;
  a.ldq = p.ldq ? p.ldq : p.nh * p.dk;
  a.ldk = p.ldk ? p.ldk : p.nkv * p.dk;
  a.ldv = p.ldv ? p.ldv : p.nkv * p.dv;
  a.ldo = p.ldo ? p.ldo : p.nh * p.dv;
  LING_CHECK(a.ldq >= p.nh * p.dk, ctx, "ldq = ", a.ldq, " is below nh*dk = ", p.nh * p.dk);
  LING_CHECK(a.ldk >= p.nkv * p.dk, ctx, "ldk = ", a.ldk, " is below nkv*dk = ", p.nkv * p.dk);
  LING_CHECK(a.ldv >= p.nkv * p.dv, ctx, "ldv = ", a.ldv, " is below nkv*dv = ", p.nkv * p.dv);
  LING_CHECK(a.ldo >= p.nh * p.dv, ctx, "ldo = ", a.ldo, " is below nh*dv = ", p.nh * p.dv);
  if (bf16) {
    LING_CHECK(a.ldq % 8 == 0 && a.ldk % 8 == 0 && a.ldv % 8 == 0, ctx, "BF16 row strides ldq/ldk/ldv = ", a.ldq,
               "/", a.ldk, "/", a.ldv, " must be multiples of 8 elements");
    for (const void* ptr : {p.q, p.k, p.v})
      LING_CHECK(reinterpret_cast<uintptr_t>(ptr) % 16 == 0, ctx, "BF16 q/k/v pointers must be 16-byte aligned");
    LING_CHECK(a.ldo % 2 == 0 && reinterpret_cast<uintptr_t>(p.o) % 8 == 0, ctx,
               "BF16 path: o must be 8-byte aligned with an even ldo (ldo = ", a.ldo, ")");
    LING_CHECK(p.warp_rows == 0 || p.warp_rows == 16 || p.warp_rows == 32, ctx, "warp_rows = ", p.warp_rows,
               " (0, 16 or 32)");
    LING_CHECK(p.cta_rows == 0 || p.cta_rows == 128 || (p.cta_rows == 256 && p.warp_rows != 16), ctx,
               "cta_rows = ", p.cta_rows, " with warp_rows = ", p.warp_rows, " (0 or 128; 256 needs warp_rows 32)");
    LING_CHECK((p.T + 127) / 128 <= 65535, ctx, "T = ", p.T, " exceeds the grid limit (65535 tiles of 128)");
  } else {
    LING_CHECK((p.T + 15) / 16 <= 65535, ctx, "T = ", p.T, " exceeds the grid limit (65535 tiles of 16)");
  }
  a.T = p.T, a.S = p.S, a.q_pos0 = p.q_pos0;
  a.nh = int(p.nh), a.G = int(p.nh / p.nkv), a.dk = int(p.dk), a.dv = int(p.dv);
  a.scale = p.scale;
  if (!bf16) return flash::launch_f32(a, stream);
  // Defaults measured on an H100 (ling bench attention.prefill rows): 32 rows per warp; 256 rows per CTA for
  // dk > 128 (MLA 192/128: 3–6% faster at S 8K–128K), 128 otherwise (GQA 128/128: 4% faster).
  const int warp_rows = p.warp_rows == 0 ? 32 : p.warp_rows;
  const int cta_rows = p.cta_rows != 0 ? p.cta_rows : warp_rows == 32 && p.dk > 128 ? 256 : 128;
  flash::launch_bf16(a, warp_rows, cta_rows, stream);
}

}  // namespace ling::kernels
