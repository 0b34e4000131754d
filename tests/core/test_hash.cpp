// SHA-256 against the FIPS 180-4 / NIST example vectors, in one piece and streamed from a file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <cstdlib>
#include <fstream>

#include "ling/core/error.h"
#include "ling/core/fs.h"
#include "ling/core/hash.h"

namespace ling {
namespace {

TEST(Sha256, NistVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256, FileStreamsLikeBytes) {
  const std::string path = (std::filesystem::temp_directory_path() / ("ling_hash_" + std::to_string(::getpid()))).string();
  std::string data(3 * 1024 * 1024 + 17, '\0');
  for (size_t i = 0; i < data.size(); ++i) data[i] = char(i * 31 + 7);
  std::ofstream(path, std::ios::binary) << data;
  EXPECT_EQ(sha256_file(path), sha256_hex(data));
  std::filesystem::remove(path);
  EXPECT_THROW(sha256_file(path), Error);
}

}  // namespace
}  // namespace ling

// The per-user hash cache: the same digest as the streamed hash; consulted by (path, size, mtime) — shown by
// planting a different digest for the current key —; a changed file is rehashed.
TEST(Sha256Cache, KeyedByPathSizeAndMtime) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("ling_hash_cache_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  ::setenv("LING_CACHE_DIR", (dir / "cache").c_str(), 1);
  const std::string f = (dir / "weights.bin").string();
  { std::ofstream(f, std::ios::binary) << "abc"; }
  const std::string h = ling::sha256_file(f);
  EXPECT_EQ(ling::sha256_file_cached(f), h);
  ASSERT_TRUE(fs::exists(dir / "cache" / "sha256.tsv"));
  // Plant another digest for the same key: the cache is what answers.
  std::string text = ling::read_file((dir / "cache" / "sha256.tsv").string());
  const size_t at = text.find(h);
  ASSERT_NE(at, std::string::npos);
  text.replace(at, h.size(), std::string(64, 'f'));
  ling::write_file_atomic((dir / "cache" / "sha256.tsv").string(), text);
  EXPECT_EQ(ling::sha256_file_cached(f), std::string(64, 'f'));
  // A change of size rehashes (and replaces the entry).
  { std::ofstream(f, std::ios::binary) << "abcd"; }
  EXPECT_EQ(ling::sha256_file_cached(f), ling::sha256_file(f));
  EXPECT_EQ(ling::sha256_file_cached(f), ling::sha256_hex("abcd"));
  ::unsetenv("LING_CACHE_DIR");
  fs::remove_all(dir);
}
