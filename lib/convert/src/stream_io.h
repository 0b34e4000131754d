// Streaming helpers of the converter: an output folder that appears only when complete, page release for the
// mapped input, dtype encoding of fp64 results, and chunked tensor copies.
#pragma once
#include <cstddef>
#include <string>
#include <vector>

#include "ling/core/dtype.h"
#include "ling/core/safetensors.h"

namespace ling::convert {

// A temporary output folder removed on destruction unless commit() renamed it to its final name.
class TempDir {
 public:
  explicit TempDir(std::string path);
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  // fsync the folder's files, then rename to `final_path` (an existing folder is replaced when `replace`).
  void commit(const std::string& final_path, bool replace);

 private:
  std::string path_;
  bool done_ = false;
};

// Drop the mapped pages of a tensor from this process (file-backed, read-only: nothing is lost).
void release_pages(const TensorInfo& t);
// Encode fp64 values as F32, BF16 or F16 (round to nearest even).
std::vector<std::byte> encode(const std::vector<double>& v, DType dtype);
// Copy a tensor's bytes into the writer in 64 MiB pieces, releasing the source pages behind the copy.
void copy_tensor(SafetensorsWriter& w, const std::string& name, const TensorInfo& t);
std::string shape_string(const std::vector<int64_t>& shape);

}  // namespace ling::convert
