// safetensors I/O (eval.md §7.1): a zero-copy mmap reader that enforces every validation rule of the format,
// a sharded-checkpoint view (model.safetensors.index.json), and a streaming writer that never leaves a file
// that looks complete after a crash (temporary name, fsync, rename).
// Errors name the file, the tensor and the rule, e.g.
//   model.safetensors: tensor 'x': data_offsets [0, 12) hold 12 bytes, shape [2, 3] F32 needs 24
#pragma once
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "ling/core/dtype.h"

namespace ling {

// One tensor of an open file. `data` points into the mapping (or an aligned copy when the file's offset is
// misaligned for the dtype); valid while the owning SafetensorsFile/Checkpoint lives.
struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;  // row-major; empty = scalar
  uint64_t begin = 0, end = 0; // data_offsets relative to the data buffer
  const std::byte* data = nullptr;
  std::string file;            // path of the file holding it

  int64_t numel() const;
  size_t nbytes() const { return static_cast<size_t>(end - begin); }
  std::string shape_str() const;  // "[2, 3]"
  // Copy all values converted to f32 (throws naming the tensor for non-numeric dtypes).
  std::vector<float> to_f32() const;
  void to_f32(float* dst) const;
};

// One .safetensors file, mapped read-only and validated on open.
class SafetensorsFile {
 public:
  // Throws ling::Error naming `path` and the violated rule.
  static std::unique_ptr<SafetensorsFile> open(const std::string& path);
  ~SafetensorsFile();
  SafetensorsFile(const SafetensorsFile&) = delete;
  SafetensorsFile& operator=(const SafetensorsFile&) = delete;

  const std::string& path() const { return path_; }
  const std::vector<TensorInfo>& tensors() const { return tensors_; }  // in file (offset) order
  const TensorInfo* find(const std::string& name) const;                // nullptr when absent
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  uint64_t header_size() const { return header_size_; }
  uint64_t file_size() const { return file_size_; }

 private:
  SafetensorsFile() = default;
  std::string path_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> index_;
  std::map<std::string, std::string> metadata_;
  uint64_t header_size_ = 0, file_size_ = 0;
  void* map_ = nullptr;
  std::vector<std::unique_ptr<std::byte[]>> aligned_copies_;
  friend struct SafetensorsParser;
};

// A model's weights: a folder with model.safetensors, or with model.safetensors.index.json and its shards,
// or a single .safetensors file. The index is checked (every entry present in its shard, no tensor in two
// shards, every shard tensor listed).
class Checkpoint {
 public:
  static Checkpoint open(const std::string& path);
  // Header-only variant: validates headers and offsets but does not keep the data mapped (for inspect).
  const TensorInfo* find(const std::string& name) const;
  const TensorInfo& get(const std::string& name) const;  // throws "<dir>: missing tensor 'name'"
  std::vector<std::string> names() const;                // sorted
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }
  const std::string& path() const { return path_; }
  uint64_t total_bytes() const;

 private:
  std::string path_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorInfo*> by_name_;
};

// Streaming writer. Declare every tensor first (the header needs all offsets), then write the data in any
// order with write(); finish() pads, fsyncs, renames "<path>.tmp.<pid>" to `path` and fsyncs the folder.
// A writer destroyed without finish() removes its temporary file. Tensors are ordered by descending dtype
// alignment then name, and the JSON header is padded with spaces to a multiple of 8.
class SafetensorsWriter {
 public:
  explicit SafetensorsWriter(std::string path, std::map<std::string, std::string> metadata = {});
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  void declare(const std::string& name, DType dtype, std::vector<int64_t> shape);
  // Write the whole tensor (nbytes must match). Writes the header on first call.
  void write(const std::string& name, const void* data, size_t nbytes);
  // Produce the tensor in pieces: `fill(dst, offset, n)` is called for consecutive byte ranges.
  void write_streamed(const std::string& name,
                      const std::function<void(std::byte* dst, size_t offset, size_t n)>& fill);
  void finish();  // throws when a declared tensor was not written
  const std::string& path() const { return path_; }

  struct Impl;  // layout state (defined in safetensors_writer.cpp)

 private:
  std::unique_ptr<Impl> impl_;
  std::string path_;
};

// Convenience: write a map of f32/i64 tensors at once (tests, dumps).
struct HostTensor {
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::vector<std::byte> bytes;
  static HostTensor from_f32(std::vector<int64_t> shape, const float* data);
  static HostTensor from_i64(std::vector<int64_t> shape, const int64_t* data);
};
void write_safetensors(const std::string& path, const std::map<std::string, HostTensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace ling
