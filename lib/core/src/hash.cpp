// SHA-256 (FIPS 180-4), streaming; used for provenance hashes (configs, tokenizers, weights, prompts).
#include "ling/core/hash.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <array>
#include <cstring>
#include <fstream>
#include <vector>

#include "ling/core/error.h"
#include "ling/core/fs.h"

namespace ling {
namespace {

constexpr std::array<uint32_t, 64> kK = {
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5, 0xd807aa98,
    0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786,
    0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8,
    0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13,
    0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819,
    0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a,
    0x5b9cca4f, 0x682e6ff3, 0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
    0xc67178f2};

uint32_t rotr(uint32_t x, int n) { return (x >> n) | (x << (32 - n)); }

void compress(std::array<uint32_t, 8>& h, const unsigned char* block) {
  uint32_t w[64];
  for (int i = 0; i < 16; ++i)
    w[i] = uint32_t(block[4 * i]) << 24 | uint32_t(block[4 * i + 1]) << 16 | uint32_t(block[4 * i + 2]) << 8 |
           uint32_t(block[4 * i + 3]);
  for (int i = 16; i < 64; ++i) {
    uint32_t s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >> 3);
    uint32_t s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >> 10);
    w[i] = w[i - 16] + s0 + w[i - 7] + s1;
  }
  uint32_t a = h[0], b = h[1], c = h[2], d = h[3], e = h[4], f = h[5], g = h[6], hh = h[7];
  for (int i = 0; i < 64; ++i) {
    uint32_t t1 = hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + kK[i] + w[i];
    uint32_t t2 = (rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c));
    hh = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;
  }
  h[0] += a; h[1] += b; h[2] += c; h[3] += d; h[4] += e; h[5] += f; h[6] += g; h[7] += hh;
}

}  // namespace

namespace {
// Streaming state: 64-byte blocks go through compress(); the tail waits in buf.
struct Sha256 {
  std::array<uint32_t, 8> h = {0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a,
                               0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19};
  unsigned char buf[64];
  size_t fill = 0;
  uint64_t total = 0;
  void update(const unsigned char* p, size_t n) {
    total += n;
    while (n > 0) {
      if (fill == 0 && n >= 64) {
        compress(h, p);
        p += 64, n -= 64;
        continue;
      }
      size_t take = std::min(n, 64 - fill);
      std::memcpy(buf + fill, p, take);
      fill += take, p += take, n -= take;
      if (fill == 64) compress(h, buf), fill = 0;
    }
  }
  std::string hex() {
    uint64_t bits = total * 8;
    unsigned char pad = 0x80, zero = 0;
    update(&pad, 1);
    while (fill != 56) update(&zero, 1);
    unsigned char len[8];
    for (int k = 0; k < 8; ++k) len[7 - k] = static_cast<unsigned char>(bits >> (8 * k));
    update(len, 8);
    static const char* digits = "0123456789abcdef";
    std::string out(64, '0');
    for (int k = 0; k < 8; ++k)
      for (int j = 0; j < 8; ++j) out[size_t(8 * k + j)] = digits[(h[size_t(k)] >> (28 - 4 * j)) & 0xf];
    return out;
  }
};
}  // namespace

std::string sha256_hex(std::string_view bytes) {
  Sha256 s;
  s.update(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size());
  return s.hex();
}

std::string sha256_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  LING_CHECK(f.good(), path, ": cannot open for hashing");
  Sha256 s;
  std::vector<char> buf(1 << 20);
  while (f) {
    f.read(buf.data(), static_cast<std::streamsize>(buf.size()));
    s.update(reinterpret_cast<const unsigned char*>(buf.data()), static_cast<size_t>(f.gcount()));
  }
  LING_CHECK(f.eof(), path, ": read error while hashing");
  return s.hex();
}

}  // namespace ling

namespace ling {

namespace {

std::string cache_file() {
  namespace fs = std::filesystem;
  if (const char* d = std::getenv("LING_CACHE_DIR"); d && *d) return (fs::path(d) / "sha256.tsv").string();
  if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return (fs::path(x) / "ling" / "sha256.tsv").string();
  if (const char* h = std::getenv("HOME"); h && *h) return (fs::path(h) / ".cache" / "ling" / "sha256.tsv").string();
  return "";
}

}  // namespace

std::string sha256_file_cached(const std::string& path) {
  namespace fs = std::filesystem;
  std::error_code ec;
  const fs::path abs = fs::absolute(path, ec).lexically_normal();
  const auto size = fs::file_size(abs, ec);
  if (ec) return sha256_file(path);  // let the uncached path report the error
  const auto mtime = fs::last_write_time(abs, ec).time_since_epoch().count();
  if (ec) return sha256_file(path);
  const std::string key = std::to_string(size) + "\t" + std::to_string(mtime) + "\t";
  const std::string cf = cache_file();
  std::vector<std::string> lines;
  if (!cf.empty()) {
    std::ifstream in(cf);
    std::string line;
    while (std::getline(in, line)) {
      // size \t mtime \t sha256 \t path
      const size_t p3 = line.find('\t', line.find('\t', line.find('\t') + 1) + 1);
      if (p3 == std::string::npos) continue;
      if (line.compare(p3 + 1, std::string::npos, abs.string()) == 0) {
        if (line.compare(0, key.size(), key) == 0) return line.substr(key.size(), p3 - key.size());
        continue;  // stale entry of this path: dropped below
      }
      lines.push_back(line);
    }
  }
  const std::string sha = sha256_file(path);
  if (!cf.empty()) {
    lines.push_back(key + sha + "\t" + abs.string());
    std::string text;
    for (const auto& l : lines) text += l + "\n";
    try {
      fs::create_directories(fs::path(cf).parent_path(), ec);
      write_file_atomic(cf, text);
    } catch (const Error&) {
    }
  }
  return sha;
}

}  // namespace ling
