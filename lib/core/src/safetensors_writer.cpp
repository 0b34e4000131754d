// Streaming safetensors writer (eval.md §7.1 writer rules). All tensors are declared first so the header
// (padded with spaces to a multiple of 8) can be written before any data; tensors are laid out by descending
// dtype alignment then name, so each is aligned to its element size. Data goes to "<path>.tmp.<pid>" with
// pwrite (tensors may be written in any order, in pieces); finish() checks completeness, fsyncs, renames onto
// `path` and fsyncs the folder. A writer destroyed before finish() removes its temporary file, so a crash
// never leaves a file under the final name.
#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "ling/core/error.h"
#include "ling/core/safetensors.h"

namespace ling {

namespace {
struct Entry {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;
  uint64_t begin = 0, nbytes = 0;
  bool written = false;
};

void pwrite_all(int fd, const void* data, size_t n, uint64_t offset, const std::string& path) {
  const char* p = static_cast<const char*>(data);
  while (n > 0) {
    ssize_t w = ::pwrite(fd, p, n, off_t(offset));
    if (w < 0) {
      if (errno == EINTR) continue;
      LING_THROW(path, ": write failed (", std::strerror(errno), ")");
    }
    p += w;
    n -= size_t(w);
    offset += uint64_t(w);
  }
}

void fsync_dir_of(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}
}  // namespace

struct SafetensorsWriter::Impl {
  std::map<std::string, std::string> metadata;
  std::vector<Entry> entries;
  std::map<std::string, size_t> index;
  std::string tmp_path;
  int fd = -1;
  uint64_t data_start = 0;
  bool laid_out = false, finished = false;
};

SafetensorsWriter::SafetensorsWriter(std::string path, std::map<std::string, std::string> metadata)
    : impl_(std::make_unique<Impl>()), path_(std::move(path)) {
  impl_->metadata = std::move(metadata);
  impl_->tmp_path = path_ + ".tmp." + std::to_string(::getpid());
}

SafetensorsWriter::~SafetensorsWriter() {
  if (impl_->fd >= 0) ::close(impl_->fd);
  if (!impl_->finished && impl_->laid_out) ::unlink(impl_->tmp_path.c_str());
}

void SafetensorsWriter::declare(const std::string& name, DType dtype, std::vector<int64_t> shape) {
  LING_CHECK(!impl_->laid_out, path_, ": tensor '", name, "' declared after writing started");
  LING_CHECK(name != "__metadata__" && !name.empty(), path_, ": invalid tensor name '", name, "'");
  LING_CHECK(!impl_->index.count(name), path_, ": tensor '", name, "' declared twice");
  uint64_t nbytes = dtype_size(dtype);
  for (int64_t d : shape) {
    LING_CHECK(d >= 0, path_, ": tensor '", name, "': negative dimension");
    LING_CHECK(!__builtin_mul_overflow(nbytes, uint64_t(d), &nbytes), path_, ": tensor '", name, "': size overflows");
  }
  impl_->index[name] = impl_->entries.size();
  impl_->entries.push_back(Entry{name, dtype, std::move(shape), 0, nbytes, false});
}

// Lays out the tensors, opens the temporary file and writes the header.
static void lay_out(SafetensorsWriter::Impl& im, const std::string& path) {
  std::vector<size_t> order(im.entries.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    const Entry& x = im.entries[a];
    const Entry& y = im.entries[b];
    if (dtype_size(x.dtype) != dtype_size(y.dtype)) return dtype_size(x.dtype) > dtype_size(y.dtype);
    return x.name < y.name;
  });
  // Header text: __metadata__ first, then entries in layout order, each with its keys in sorted order
  // (data_offsets, dtype, shape) as the reference writers emit them; ordered_json keeps this order.
  nlohmann::ordered_json h = nlohmann::ordered_json::object();
  if (!im.metadata.empty()) {
    nlohmann::ordered_json m = nlohmann::ordered_json::object();
    for (const auto& [k, v] : im.metadata) m[k] = v;
    h["__metadata__"] = m;
  }
  uint64_t offset = 0;
  for (size_t i : order) {
    Entry& e = im.entries[i];
    e.begin = offset;
    offset += e.nbytes;
    nlohmann::ordered_json t = nlohmann::ordered_json::object();
    t["data_offsets"] = {e.begin, e.begin + e.nbytes};
    t["dtype"] = dtype_name(e.dtype);
    t["shape"] = e.shape;
    h[e.name] = t;
  }
  std::string text = h.dump();
  while (text.size() % 8) text += ' ';
  im.fd = ::open(im.tmp_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (im.fd < 0) LING_THROW(path, ": cannot create ", im.tmp_path, " (", std::strerror(errno), ")");
  im.laid_out = true;
  unsigned char len[8];
  uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) len[i] = static_cast<unsigned char>(n >> (8 * i));
  pwrite_all(im.fd, len, 8, 0, path);
  pwrite_all(im.fd, text.data(), text.size(), 8, path);
  im.data_start = 8 + n;
  if (::ftruncate(im.fd, off_t(im.data_start + offset)) != 0)
    LING_THROW(path, ": cannot size the file to ", im.data_start + offset, " bytes (", std::strerror(errno), ")");
}

void SafetensorsWriter::write(const std::string& name, const void* data, size_t nbytes) {
  auto it = impl_->index.find(name);
  LING_CHECK(it != impl_->index.end(), path_, ": tensor '", name, "' was not declared");
  LING_CHECK(impl_->entries[it->second].nbytes == nbytes, path_, ": tensor '", name, "': ", nbytes,
             " bytes given, declared shape needs ", impl_->entries[it->second].nbytes);
  write_streamed(name, [&](std::byte* dst, size_t offset, size_t n) {
    std::memcpy(dst, static_cast<const char*>(data) + offset, n);
  });
}

void SafetensorsWriter::write_streamed(const std::string& name,
                                       const std::function<void(std::byte*, size_t, size_t)>& fill) {
  auto it = impl_->index.find(name);
  LING_CHECK(it != impl_->index.end(), path_, ": tensor '", name, "' was not declared");
  if (!impl_->laid_out) lay_out(*impl_, path_);
  Entry& e = impl_->entries[it->second];
  LING_CHECK(!e.written, path_, ": tensor '", name, "' written twice");
  constexpr size_t kChunk = size_t(16) << 20;
  std::vector<std::byte> buf(std::min<uint64_t>(kChunk, std::max<uint64_t>(e.nbytes, 1)));
  for (uint64_t off = 0; off < e.nbytes; off += kChunk) {
    size_t n = size_t(std::min<uint64_t>(kChunk, e.nbytes - off));
    fill(buf.data(), size_t(off), n);
    pwrite_all(impl_->fd, buf.data(), n, impl_->data_start + e.begin + off, path_);
  }
  e.written = true;
}

void SafetensorsWriter::finish() {
  if (!impl_->laid_out) lay_out(*impl_, path_);
  for (const auto& e : impl_->entries)
    if (!e.written && e.nbytes > 0) LING_THROW(path_, ": tensor '", e.name, "' was declared but never written");
  if (::fsync(impl_->fd) != 0) LING_THROW(path_, ": fsync failed (", std::strerror(errno), ")");
  ::close(impl_->fd);
  impl_->fd = -1;
  if (::rename(impl_->tmp_path.c_str(), path_.c_str()) != 0)
    LING_THROW(path_, ": cannot rename ", impl_->tmp_path, " into place (", std::strerror(errno), ")");
  impl_->finished = true;
  fsync_dir_of(path_);
}

HostTensor HostTensor::from_f32(std::vector<int64_t> shape, const float* data) {
  HostTensor t;
  t.dtype = DType::F32;
  t.shape = std::move(shape);
  size_t n = 1;
  for (int64_t d : t.shape) n *= size_t(d);
  t.bytes.resize(n * 4);
  if (n) std::memcpy(t.bytes.data(), data, n * 4);
  return t;
}

HostTensor HostTensor::from_i64(std::vector<int64_t> shape, const int64_t* data) {
  HostTensor t;
  t.dtype = DType::I64;
  t.shape = std::move(shape);
  size_t n = 1;
  for (int64_t d : t.shape) n *= size_t(d);
  t.bytes.resize(n * 8);
  if (n) std::memcpy(t.bytes.data(), data, n * 8);
  return t;
}

void write_safetensors(const std::string& path, const std::map<std::string, HostTensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
  SafetensorsWriter w(path, metadata);
  for (const auto& [name, t] : tensors) w.declare(name, t.dtype, t.shape);
  for (const auto& [name, t] : tensors) w.write(name, t.bytes.data(), t.bytes.size());
  w.finish();
}

}  // namespace ling
