// Streaming helpers of the converter (see stream_io.h).
#include "stream_io.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>

#include "ling/core/error.h"

namespace ling::convert {

namespace fs = std::filesystem;

TempDir::TempDir(std::string path) : path_(std::move(path)) {
  std::error_code ec;
  fs::create_directories(path_, ec);
  LING_CHECK(!ec, path_, ": cannot create the output folder (", ec.message(), ")");
}

TempDir::~TempDir() {
  if (done_) return;
  std::error_code ec;
  fs::remove_all(path_, ec);
}

void TempDir::commit(const std::string& final_path, bool replace) {
  for (const auto& e : fs::directory_iterator(path_)) {
    int fd = ::open(e.path().c_str(), O_RDONLY);
    LING_CHECK(fd >= 0, e.path().string(), ": cannot open for fsync");
    const int rc = ::fsync(fd);
    ::close(fd);
    LING_CHECK(rc == 0, e.path().string(), ": fsync failed (disk full?)");
  }
  std::string old;
  std::error_code ec;
  if (fs::exists(final_path)) {
    LING_CHECK(replace, final_path, ": exists (pass --force to replace it)");
    old = final_path + ".old." + std::to_string(::getpid());
    fs::rename(final_path, old, ec);
    LING_CHECK(!ec, final_path, ": cannot move the existing folder aside (", ec.message(), ")");
  }
  fs::rename(path_, final_path, ec);
  LING_CHECK(!ec, final_path, ": cannot rename the finished output into place (", ec.message(), ")");
  done_ = true;
  if (!old.empty()) fs::remove_all(old, ec);
  const fs::path parent = fs::absolute(final_path).parent_path();
  int dfd = ::open(parent.c_str(), O_RDONLY | O_DIRECTORY);
  if (dfd >= 0) {
    ::fsync(dfd);
    ::close(dfd);
  }
}

void release_pages(const TensorInfo& t) {
  if (!t.data || t.nbytes() == 0) return;
  const long page = ::sysconf(_SC_PAGESIZE);
  const uintptr_t a = reinterpret_cast<uintptr_t>(t.data);
  const uintptr_t begin = (a + uintptr_t(page) - 1) / uintptr_t(page) * uintptr_t(page);
  const uintptr_t end = (a + t.nbytes()) / uintptr_t(page) * uintptr_t(page);
  if (end > begin) ::madvise(reinterpret_cast<void*>(begin), end - begin, MADV_DONTNEED);
}

std::vector<std::byte> encode(const std::vector<double>& v, DType dtype) {
  std::vector<std::byte> out(v.size() * dtype_size(dtype));
  for (size_t i = 0; i < v.size(); ++i) {
    const float f = float(v[i]);
    LING_CHECK(std::isfinite(f), "conversion produced a non-finite value (", v[i], ")");
    switch (dtype) {
      case DType::F32: std::memcpy(out.data() + 4 * i, &f, 4); break;
      case DType::BF16: { const uint16_t h = f32_to_bf16(f); std::memcpy(out.data() + 2 * i, &h, 2); break; }
      case DType::F16: { const uint16_t h = f32_to_f16(f); std::memcpy(out.data() + 2 * i, &h, 2); break; }
      default: LING_THROW("cannot write converted tensors as ", dtype_name(dtype));
    }
  }
  return out;
}

void copy_tensor(SafetensorsWriter& w, const std::string& name, const TensorInfo& t) {
  constexpr size_t piece = size_t(64) << 20;
  const std::byte* src = t.data;
  w.write_streamed(name, [&](std::byte* dst, size_t offset, size_t n) {
    for (size_t done = 0; done < n; done += piece) {
      const size_t m = std::min(piece, n - done);
      std::memcpy(dst + done, src + offset + done, m);
      TensorInfo part;
      part.data = src + offset + done;
      part.begin = 0;
      part.end = m;
      release_pages(part);
    }
  });
}

std::string shape_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace ling::convert
