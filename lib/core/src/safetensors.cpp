// safetensors reader (eval.md §7.1): maps a file read-only and enforces every validation rule of the format:
//   1 file >= 8 bytes; 2 header size N <= 100,000,000; 3 8 + N <= file size; 4 header is UTF-8 and a JSON
//   object; 5 no duplicate keys; 6 entries have a known dtype, a shape of non-negative integers and offsets
//   begin <= end; 7 end - begin == prod(shape) * dtype size (overflow-checked); 8 tensors tile the data buffer
//   from 0 without gaps or overlaps; 9 the last end + 8 + N == file size. __metadata__ is a string->string map.
// Data is never read here: tensors point into the mapping (an aligned copy only when an offset is misaligned
// for its dtype), so opening a 100 GB checkpoint touches only its headers.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <set>
#include <nlohmann/json.hpp>

#include "ling/core/error.h"
#include "ling/core/safetensors.h"

namespace ling {

namespace {

constexpr uint64_t kMaxHeader = 100000000;

// Rule 4: the header must be valid UTF-8 (checked before JSON parsing for a precise message).
bool valid_utf8(const unsigned char* s, size_t n, size_t* bad) {
  size_t i = 0;
  while (i < n) {
    unsigned char c = s[i];
    size_t len = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xe ? 3 : (c >> 3) == 0x1e ? 4 : 0;
    if (len == 0 || i + len > n) { *bad = i; return false; }
    uint32_t cp = len == 1 ? c : len == 2 ? (c & 0x1f) : len == 3 ? (c & 0x0f) : (c & 0x07);
    for (size_t k = 1; k < len; ++k) {
      if ((s[i + k] & 0xc0) != 0x80) { *bad = i; return false; }
      cp = (cp << 6) | (s[i + k] & 0x3f);
    }
    bool overlong = (len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000);
    if (overlong || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) { *bad = i; return false; }
    i += len;
  }
  return true;
}

// Rule 5: a SAX pass that rejects duplicate keys in any object (a DOM parser keeps the last one silently).
class DuplicateKeyCheck : public nlohmann::json_sax<nlohmann::json> {
 public:
  std::string duplicate, error;
  bool null() override { return true; }
  bool boolean(bool) override { return true; }
  bool number_integer(number_integer_t) override { return true; }
  bool number_unsigned(number_unsigned_t) override { return true; }
  bool number_float(number_float_t, const string_t&) override { return true; }
  bool string(string_t&) override { return true; }
  bool binary(binary_t&) override { return true; }
  bool start_object(std::size_t) override { keys_.emplace_back(); return true; }
  bool key(string_t& k) override {
    if (!keys_.back().insert(k).second) { duplicate = k; return false; }
    return true;
  }
  bool end_object() override { keys_.pop_back(); return true; }
  bool start_array(std::size_t) override { return true; }
  bool end_array() override { return true; }
  bool parse_error(std::size_t pos, const std::string&, const nlohmann::detail::exception& ex) override {
    error = cat("invalid JSON header at byte ", pos, ": ", ex.what());
    return false;
  }

 private:
  std::vector<std::set<std::string>> keys_;
};

bool is_nonneg_int(const nlohmann::json& v) {
  return v.is_number_unsigned() || (v.is_number_integer() && v.get<int64_t>() >= 0);
}

std::string shape_to_string(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

}  // namespace

// Parses and validates the header of an already-mapped file into SafetensorsFile's fields.
struct SafetensorsParser {
  static void parse(SafetensorsFile& f, const unsigned char* base) {
    const std::string& p = f.path_;
    const uint64_t N = f.header_size_;
    const unsigned char* hdr = base + 8;
    size_t bad = 0;
    if (!valid_utf8(hdr, N, &bad)) LING_THROW(p, ": header is not valid UTF-8 (byte ", bad, ")");
    size_t first = 0;
    while (first < N && (hdr[first] == ' ' || hdr[first] == '\t' || hdr[first] == '\n' || hdr[first] == '\r')) ++first;
    if (first == N || hdr[first] != '{') LING_THROW(p, ": header is not a JSON object");
    std::string text(reinterpret_cast<const char*>(hdr), N);
    DuplicateKeyCheck dup;
    if (!nlohmann::json::sax_parse(text, &dup)) {
      if (!dup.duplicate.empty()) LING_THROW(p, ": duplicate key '", dup.duplicate, "' in the header");
      LING_THROW(p, ": ", dup.error.empty() ? std::string("invalid JSON header") : dup.error);
    }
    nlohmann::json j = nlohmann::json::parse(text);
    if (!j.is_object()) LING_THROW(p, ": header is not a JSON object");

    const uint64_t data_size = f.file_size_ - 8 - N;
    for (auto it = j.begin(); it != j.end(); ++it) {
      const std::string& name = it.key();
      const nlohmann::json& e = it.value();
      if (name == "__metadata__") {
        if (!e.is_object()) LING_THROW(p, ": __metadata__ must be an object of strings");
        for (auto m = e.begin(); m != e.end(); ++m) {
          if (!m.value().is_string()) LING_THROW(p, ": __metadata__ value of '", m.key(), "' is not a string");
          f.metadata_[m.key()] = m.value().get<std::string>();
        }
        continue;
      }
      auto fail = [&](const auto&... what) { LING_THROW(p, ": tensor '", name, "': ", what...); };
      if (!e.is_object()) fail("entry is not an object");
      if (!e.contains("dtype") || !e["dtype"].is_string()) fail("missing or non-string dtype");
      TensorInfo t;
      t.name = name;
      t.file = p;
      const std::string dt = e["dtype"].get<std::string>();
      if (!parse_dtype(dt, &t.dtype)) fail("unsupported dtype '", dt, "'");
      if (!e.contains("shape") || !e["shape"].is_array()) fail("missing or non-array shape");
      for (const auto& d : e["shape"]) {
        if (!is_nonneg_int(d)) fail("shape must hold non-negative integers");
        uint64_t v = d.get<uint64_t>();
        if (v > uint64_t(INT64_MAX)) fail("shape dimension too large");
        t.shape.push_back(int64_t(v));
      }
      if (!e.contains("data_offsets") || !e["data_offsets"].is_array() || e["data_offsets"].size() != 2 ||
          !is_nonneg_int(e["data_offsets"][0]) || !is_nonneg_int(e["data_offsets"][1]))
        fail("data_offsets must be two non-negative integers");
      t.begin = e["data_offsets"][0].get<uint64_t>();
      t.end = e["data_offsets"][1].get<uint64_t>();
      if (t.begin > t.end) fail("data_offsets begin ", t.begin, " > end ", t.end);
      uint64_t need = dtype_size(t.dtype);
      for (int64_t d : t.shape)
        if (__builtin_mul_overflow(need, uint64_t(d), &need)) fail("shape ", shape_to_string(t.shape), " overflows");
      if (t.end - t.begin != need)
        fail("data_offsets [", t.begin, ", ", t.end, ") hold ", t.end - t.begin, " bytes, shape ",
             shape_to_string(t.shape), " ", dt, " needs ", need);
      if (t.end > data_size) fail("data_offsets end ", t.end, " is past the data buffer (", data_size, " bytes)");
      f.tensors_.push_back(std::move(t));
    }
    // Rules 8 and 9: contiguous tiling of the whole data buffer.
    std::stable_sort(f.tensors_.begin(), f.tensors_.end(), [](const TensorInfo& a, const TensorInfo& b) {
      return a.begin != b.begin ? a.begin < b.begin : a.end < b.end;
    });
    uint64_t cursor = 0;
    for (const auto& t : f.tensors_) {
      if (t.begin > cursor) LING_THROW(p, ": gap in the data buffer before tensor '", t.name, "' (bytes ", cursor, "..", t.begin, ")");
      if (t.begin < cursor) LING_THROW(p, ": tensor '", t.name, "' overlaps the previous tensor (begins at ", t.begin, " < ", cursor, ")");
      cursor = t.end;
    }
    if (cursor != data_size)
      LING_THROW(p, ": tensors end at byte ", cursor, " of a ", data_size, "-byte data buffer (file size ",
                 f.file_size_, " != 8 + ", N, " + ", cursor, ")");
    for (size_t i = 0; i < f.tensors_.size(); ++i) {
      TensorInfo& t = f.tensors_[i];
      const unsigned char* ptr = base + 8 + N + t.begin;
      size_t align = dtype_size(t.dtype);
      if (t.nbytes() > 0 && reinterpret_cast<uintptr_t>(ptr) % align != 0) {
        auto copy = std::make_unique<std::byte[]>(t.nbytes());
        std::memcpy(copy.get(), ptr, t.nbytes());
        t.data = copy.get();
        f.aligned_copies_.push_back(std::move(copy));
      } else {
        t.data = reinterpret_cast<const std::byte*>(ptr);
      }
      f.index_[t.name] = i;
    }
  }
};

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string TensorInfo::shape_str() const { return shape_to_string(shape); }

void TensorInfo::to_f32(float* dst) const {
  if (dtype == DType::BOOL) LING_THROW(file, ": tensor '", name, "': BOOL cannot be read as numbers");
  convert_to_f32(dtype, data, dst, size_t(numel()));
}

std::vector<float> TensorInfo::to_f32() const {
  std::vector<float> out(static_cast<size_t>(numel()));
  to_f32(out.data());
  return out;
}

std::unique_ptr<SafetensorsFile> SafetensorsFile::open(const std::string& path) {
  std::unique_ptr<SafetensorsFile> f(new SafetensorsFile());
  f->path_ = path;
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) LING_THROW(path, ": cannot open (", std::strerror(errno), ")");
  struct stat st{};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    LING_THROW(path, ": not a regular file");
  }
  f->file_size_ = uint64_t(st.st_size);
  if (f->file_size_ < 8) {
    ::close(fd);
    LING_THROW(path, ": file is ", f->file_size_, " bytes, shorter than the 8-byte header length");
  }
  void* map = mmap(nullptr, f->file_size_, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) LING_THROW(path, ": cannot map (", std::strerror(errno), ")");
  f->map_ = map;  // owned from here: the destructor unmaps on any error below
  const auto* base = static_cast<const unsigned char*>(map);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | base[i];
  if (n > kMaxHeader) LING_THROW(path, ": header size ", n, " exceeds the limit of ", kMaxHeader, " bytes");
  if (8 + n > f->file_size_) LING_THROW(path, ": header size ", n, " runs past the end of the ", f->file_size_, "-byte file");
  f->header_size_ = n;
  SafetensorsParser::parse(*f, base);
  return f;
}

SafetensorsFile::~SafetensorsFile() {
  if (map_) munmap(map_, file_size_);
}

const TensorInfo* SafetensorsFile::find(const std::string& name) const {
  auto it = index_.find(name);
  return it == index_.end() ? nullptr : &tensors_[it->second];
}

}  // namespace ling
