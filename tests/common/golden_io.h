// Reading the golden fixtures (../shared/fixtures, or LING_FIXTURES_DIR) from tests: the folder of a fixture,
// its prompt ids (input_ids, I64 [1, T]) and any I64 tensor as a vector.
#pragma once
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "ling/core/safetensors.h"

namespace ling::test {

inline std::string fixture(const std::string& name) {
  const char* env = std::getenv("LING_FIXTURES_DIR");
  return (env && *env ? std::string(env) : std::string(LING_SHARED_DIR) + "/fixtures") + "/" + name;
}

inline std::vector<int64_t> i64_of(const TensorInfo& t) {
  std::vector<int64_t> v(static_cast<size_t>(t.numel()));
  std::memcpy(v.data(), t.data, v.size() * 8);
  return v;
}

// input_ids of a golden or parity file as token ids.
inline std::vector<int32_t> input_ids(const SafetensorsFile& g) {
  const std::vector<int64_t> v = i64_of(*g.find("input_ids"));
  return std::vector<int32_t>(v.begin(), v.end());
}

}  // namespace ling::test
