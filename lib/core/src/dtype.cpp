// Bulk dtype conversions (the per-element converters are inline in dtype.h).
#include "ling/core/dtype.h"

#include "ling/core/error.h"

namespace ling {

void convert_to_f32(DType t, const void* src, float* dst, size_t n) {
  auto convert = [&](auto* p, auto fn) {
    for (size_t i = 0; i < n; ++i) dst[i] = fn(p[i]);
  };
  switch (t) {
    case DType::F32: std::memcpy(dst, src, n * 4); return;
    case DType::F64: convert(static_cast<const double*>(src), [](double v) { return static_cast<float>(v); }); return;
    case DType::BF16: convert(static_cast<const uint16_t*>(src), bf16_to_f32); return;
    case DType::F16: convert(static_cast<const uint16_t*>(src), f16_to_f32); return;
    case DType::F8_E4M3: convert(static_cast<const uint8_t*>(src), fp8_e4m3_to_f32); return;
    case DType::F8_E5M2: convert(static_cast<const uint8_t*>(src), fp8_e5m2_to_f32); return;
    case DType::I64: convert(static_cast<const int64_t*>(src), [](int64_t v) { return static_cast<float>(v); }); return;
    case DType::I32: convert(static_cast<const int32_t*>(src), [](int32_t v) { return static_cast<float>(v); }); return;
    case DType::I16: convert(static_cast<const int16_t*>(src), [](int16_t v) { return static_cast<float>(v); }); return;
    case DType::I8: convert(static_cast<const int8_t*>(src), [](int8_t v) { return static_cast<float>(v); }); return;
    case DType::U8: case DType::BOOL:
      convert(static_cast<const uint8_t*>(src), [](uint8_t v) { return static_cast<float>(v); }); return;
    case DType::U16: convert(static_cast<const uint16_t*>(src), [](uint16_t v) { return static_cast<float>(v); }); return;
    case DType::U32: convert(static_cast<const uint32_t*>(src), [](uint32_t v) { return static_cast<float>(v); }); return;
    case DType::U64: convert(static_cast<const uint64_t*>(src), [](uint64_t v) { return static_cast<float>(v); }); return;
  }
  LING_UNREACHABLE("convert_to_f32: bad dtype");
}

void convert_from_f32(DType t, const float* src, void* dst, size_t n) {
  switch (t) {
    case DType::F32: std::memcpy(dst, src, n * 4); return;
    case DType::F64: {
      auto* d = static_cast<double*>(dst);
      for (size_t i = 0; i < n; ++i) d[i] = src[i];
      return;
    }
    case DType::BF16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (size_t i = 0; i < n; ++i) d[i] = f32_to_bf16(src[i]);
      return;
    }
    case DType::F16: {
      auto* d = static_cast<uint16_t*>(dst);
      for (size_t i = 0; i < n; ++i) d[i] = f32_to_f16(src[i]);
      return;
    }
    default: LING_THROW("cannot convert f32 to ", dtype_name(t));
  }
}

}  // namespace ling
