// Storage dtypes of safetensors checkpoints and their conversion to f32.
// bf16/f16/fp8 are stored as raw bits (uint16_t/uint8_t); the converters are exact (f32 <- narrow) and
// round-to-nearest-even (narrow <- f32). FP8 follows the OCP formats: E4M3 "fn" (no inf, max 448, NaN = S.1111.111)
// and E5M2 (IEEE-like, inf and NaN). Usable from host code compiled by nvcc (kernels see only this and error.h).
#pragma once
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>

namespace ling {

enum class DType : uint8_t { F64, F32, F16, BF16, F8_E4M3, F8_E5M2, I64, I32, I16, I8, U8, U16, U32, U64, BOOL };

// Size in bytes of one element.
inline size_t dtype_size(DType t) {
  switch (t) {
    case DType::F64: case DType::I64: case DType::U64: return 8;
    case DType::F32: case DType::I32: case DType::U32: return 4;
    case DType::F16: case DType::BF16: case DType::I16: case DType::U16: return 2;
    default: return 1;
  }
}

// The safetensors spelling ("F32", "BF16", "F8_E4M3", ...).
inline const char* dtype_name(DType t) {
  switch (t) {
    case DType::F64: return "F64"; case DType::F32: return "F32"; case DType::F16: return "F16";
    case DType::BF16: return "BF16"; case DType::F8_E4M3: return "F8_E4M3"; case DType::F8_E5M2: return "F8_E5M2";
    case DType::I64: return "I64"; case DType::I32: return "I32"; case DType::I16: return "I16";
    case DType::I8: return "I8"; case DType::U8: return "U8"; case DType::U16: return "U16";
    case DType::U32: return "U32"; case DType::U64: return "U64"; case DType::BOOL: return "BOOL";
  }
  return "?";
}

// Parse a safetensors dtype name; false when unknown (the caller reports file and tensor).
inline bool parse_dtype(std::string_view s, DType* out) {
  static constexpr DType all[] = {DType::F64, DType::F32, DType::F16, DType::BF16, DType::F8_E4M3,
                                  DType::F8_E5M2, DType::I64, DType::I32, DType::I16, DType::I8,
                                  DType::U8, DType::U16, DType::U32, DType::U64, DType::BOOL};
  for (DType t : all)
    if (s == dtype_name(t)) { *out = t; return true; }
  return false;
}

inline bool dtype_is_float(DType t) {
  return t == DType::F64 || t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::F8_E4M3 ||
         t == DType::F8_E5M2;
}

inline float bits_to_f32(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
inline uint32_t f32_to_bits(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }

inline float bf16_to_f32(uint16_t h) { return bits_to_f32(static_cast<uint32_t>(h) << 16); }
inline uint16_t f32_to_bf16(float f) {  // round to nearest even; NaN stays NaN
  uint32_t u = f32_to_bits(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40);
  u += 0x7fffu + ((u >> 16) & 1u);
  return static_cast<uint16_t>(u >> 16);
}
// Round f through bf16 and back (models the cast of a bf16 model).
inline float round_bf16(float f) { return bf16_to_f32(f32_to_bf16(f)); }

inline float f16_to_f32(uint16_t h) {
  uint32_t sign = (h & 0x8000u) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ffu;
  if (exp == 0) {
    if (man == 0) return bits_to_f32(sign);
    float v = static_cast<float>(man) * (1.0f / 16777216.0f);  // subnormal: man * 2^-24
    return sign ? -v : v;
  }
  if (exp == 31) return bits_to_f32(sign | 0x7f800000u | (man << 13));
  return bits_to_f32(sign | ((exp + 112) << 23) | (man << 13));
}
inline uint16_t f32_to_f16(float f) {
  uint32_t u = f32_to_bits(f), sign = (u >> 16) & 0x8000u;
  uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return static_cast<uint16_t>(sign | 0x7e00u);
  if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // overflow -> inf
  if (a < 0x38800000u) {  // subnormal or zero: value / 2^-24, round to nearest even
    float v = bits_to_f32(a) * 16777216.0f;
    uint32_t m = static_cast<uint32_t>(v);
    float rem = v - static_cast<float>(m);
    if (rem > 0.5f || (rem == 0.5f && (m & 1u))) ++m;
    return static_cast<uint16_t>(sign | m);
  }
  a += 0xfffu + ((a >> 13) & 1u) - (112u << 23);
  return static_cast<uint16_t>(sign | (a >> 13));
}

// FP8 E4M3 (fn): bias 7, no infinities, 0x7f/0xff are NaN, max 448.
inline float fp8_e4m3_to_f32(uint8_t b) {
  uint32_t sign = (b & 0x80u) << 24, exp = (b >> 3) & 0xf, man = b & 0x7u;
  if (exp == 15 && man == 7) return bits_to_f32(sign | 0x7fc00000u);
  if (exp == 0) {
    float v = static_cast<float>(man) * (1.0f / 512.0f);  // man * 2^-9
    return sign ? -v : v;
  }
  return bits_to_f32(sign | ((exp + 120) << 23) | (man << 20));
}
// FP8 E5M2: bias 15, IEEE-like.
inline float fp8_e5m2_to_f32(uint8_t b) { return f16_to_f32(static_cast<uint16_t>(b) << 8); }

// Convert n elements of a float or integer dtype to f32 (integers by value). BOOL -> 0/1.
void convert_to_f32(DType t, const void* src, float* dst, size_t n);
// Convert n f32 values to a float dtype (F32, F16, BF16, F64); throws for others.
void convert_from_f32(DType t, const float* src, void* dst, size_t n);

}  // namespace ling
