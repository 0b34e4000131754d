// read_file / write_file_atomic: round trip, replacement of an existing file, no temporary left behind, and
// one clear error for a missing folder or file.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "ling/core/error.h"
#include "ling/core/fs.h"

namespace ling {
namespace {

TEST(Fs, AtomicWriteRoundTripAndReplace) {
  namespace fs = std::filesystem;
  const fs::path dir = fs::temp_directory_path() / ("ling_fs_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const std::string path = (dir / "a.txt").string();
  write_file_atomic(path, std::string("first\0x", 7));
  EXPECT_EQ(read_file(path), std::string("first\0x", 7));
  write_file_atomic(path, "second");
  EXPECT_EQ(read_file(path), "second");
  EXPECT_EQ(std::distance(fs::directory_iterator(dir), fs::directory_iterator{}), 1);
  EXPECT_THROW(write_file_atomic((dir / "no" / "b.txt").string(), "x"), Error);
  EXPECT_THROW(read_file((dir / "missing").string()), Error);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace ling
