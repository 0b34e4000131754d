// safetensors reader and writer (eval.md §7.1): one crafted file per validation rule (the error must name the
// file and the rule or tensor), the byte-exact vectors of the spec, writer round trips, crash safety of the
// writer, sharded checkpoints and the aligned-copy path.
#include <gtest/gtest.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>

#include "ling/core/error.h"
#include "ling/core/safetensors.h"

namespace ling {
namespace {

namespace fs = std::filesystem;

class Safetensors : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("ling_st_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A file made of an 8-byte length, the header text and `data_bytes` bytes of data.
  std::string craft(const std::string& header, size_t data_bytes, const char* name = "x.safetensors",
                    int64_t length_override = -1) {
    std::string path = (dir_ / name).string();
    std::ofstream f(path, std::ios::binary);
    uint64_t n = length_override >= 0 ? uint64_t(length_override) : header.size();
    for (int i = 0; i < 8; ++i) f.put(char((n >> (8 * i)) & 0xff));
    f << header << std::string(data_bytes, '\0');
    return path;
  }
  std::string open_error(const std::string& path) {
    try {
      SafetensorsFile::open(path);
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
  void expect_error(const std::string& header, size_t data, const std::string& needle) {
    std::string path = craft(header, data);
    std::string msg = open_error(path);
    ASSERT_FALSE(msg.empty()) << "accepted: " << header;
    EXPECT_NE(msg.find(path), std::string::npos) << msg;
    EXPECT_NE(msg.find(needle), std::string::npos) << msg;
  }
  fs::path dir_;
};

const std::string kOk = R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})";

TEST_F(Safetensors, AcceptsAValidFile) {
  auto f = SafetensorsFile::open(craft(kOk, 8));
  ASSERT_EQ(f->tensors().size(), 1u);
  EXPECT_EQ(f->find("a")->numel(), 2);
}

TEST_F(Safetensors, Rule1FileShorterThan8Bytes) {
  std::string path = (dir_ / "short.safetensors").string();
  std::ofstream(path) << "abc";
  EXPECT_NE(open_error(path).find("shorter than the 8-byte header length"), std::string::npos);
}

TEST_F(Safetensors, Rule2HeaderTooLarge) {
  std::string path = craft(kOk, 8, "big.safetensors", 100000001);
  EXPECT_NE(open_error(path).find("exceeds the limit"), std::string::npos) << open_error(path);
}

TEST_F(Safetensors, Rule3HeaderPastEndOfFile) {
  std::string path = craft(kOk, 0, "past.safetensors", int64_t(kOk.size()) + 100);
  EXPECT_NE(open_error(path).find("runs past the end"), std::string::npos) << open_error(path);
}

TEST_F(Safetensors, Rule4InvalidUtf8) { expect_error("{\"\xff\":1}", 0, "not valid UTF-8"); }
TEST_F(Safetensors, Rule4NotAnObject) { expect_error("[1, 2, 3]", 0, "not a JSON object"); }
TEST_F(Safetensors, Rule4InvalidJson) { expect_error("{\"a\": ", 0, "invalid JSON"); }

TEST_F(Safetensors, Rule5DuplicateKey) {
  expect_error(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
               8, "duplicate key 'a'");
}

TEST_F(Safetensors, Rule6UnknownDtype) {
  expect_error(R"({"a":{"dtype":"F4","shape":[2],"data_offsets":[0,1]}})", 1, "unsupported dtype 'F4'");
}
TEST_F(Safetensors, Rule6NegativeShape) {
  expect_error(R"({"a":{"dtype":"F32","shape":[-2],"data_offsets":[0,8]}})", 8, "non-negative integers");
}
TEST_F(Safetensors, Rule6NonIntegerShape) {
  expect_error(R"({"a":{"dtype":"F32","shape":[2.5],"data_offsets":[0,8]}})", 8, "non-negative integers");
}
TEST_F(Safetensors, Rule6BeginAfterEnd) {
  expect_error(R"({"a":{"dtype":"U8","shape":[0],"data_offsets":[4,0]}})", 4, "begin 4 > end 0");
}
TEST_F(Safetensors, Rule6MissingOffsets) {
  expect_error(R"({"a":{"dtype":"F32","shape":[2]}})", 8, "data_offsets must be two");
}

TEST_F(Safetensors, Rule7SizeMismatch) {
  expect_error(R"({"a":{"dtype":"F32","shape":[2,3],"data_offsets":[0,12]}})", 12, "needs 24");
}
TEST_F(Safetensors, Rule7Overflow) {
  expect_error(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,8]}})", 8, "overflows");
}

TEST_F(Safetensors, Rule8Gap) {
  expect_error(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}})",
               12, "gap in the data buffer before tensor 'b'");
}
TEST_F(Safetensors, Rule8Overlap) {
  expect_error(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})",
               8, "overlaps");
}
TEST_F(Safetensors, Rule8NotStartingAtZero) {
  expect_error(R"({"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}})", 8, "gap in the data buffer before tensor 'a'");
}

TEST_F(Safetensors, Rule9TrailingBytes) { expect_error(kOk, 12, "tensors end at byte 8 of a 12-byte data buffer"); }

TEST_F(Safetensors, MetadataMustMapStringsToStrings) {
  expect_error(R"({"__metadata__":{"format":1}})", 0, "__metadata__ value of 'format' is not a string");
  expect_error(R"({"__metadata__":[1]})", 0, "__metadata__ must be an object");
}

TEST_F(Safetensors, ZeroSizeAndScalarTensorsAreValid) {
  auto f = SafetensorsFile::open(craft(
      R"({"e":{"dtype":"F32","shape":[0,3],"data_offsets":[0,0]},"s":{"dtype":"F64","shape":[],"data_offsets":[0,8]}})", 8));
  EXPECT_EQ(f->find("e")->numel(), 0);
  EXPECT_EQ(f->find("s")->numel(), 1);
}

// eval.md §7.1 byte-exact vectors.
TEST_F(Safetensors, ByteExactVectors) {
  auto header_size = [&](const std::map<std::string, HostTensor>& t, const std::map<std::string, std::string>& meta) {
    std::string path = (dir_ / "v.safetensors").string();
    write_safetensors(path, t, meta);
    auto f = SafetensorsFile::open(path);
    EXPECT_EQ(f->file_size(), 8 + f->header_size() + (f->tensors().empty() ? 0 : f->tensors().back().end));
    return f->header_size();
  };
  float v[6] = {0, 1, 2, 3, 4, 5};
  EXPECT_EQ(header_size({{"attn.0", HostTensor::from_f32({1, 2, 3}, v)}}, {}), 64u);
  EXPECT_EQ(header_size({{"attn0", HostTensor::from_f32({1, 1, 2, 3}, v)}}, {}), 72u);
  EXPECT_EQ(header_size({}, {}), 8u);
  EXPECT_EQ(header_size({}, {{"framework", "pt"}}), 40u);
  std::string path = (dir_ / "v.safetensors").string();
  write_safetensors(path, {{"attn.0", HostTensor::from_f32({1, 2, 3}, v)}});
  auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f->file_size(), 8u + 64u + 24u);
  EXPECT_EQ(f->find("attn.0")->to_f32(), std::vector<float>(v, v + 6));
}

TEST_F(Safetensors, WriterRoundTripAllDtypesAligned) {
  std::string path = (dir_ / "rt.safetensors").string();
  SafetensorsWriter w(path, {{"format", "pt"}});
  const DType types[] = {DType::F64, DType::F32, DType::F16, DType::BF16, DType::F8_E4M3, DType::F8_E5M2,
                         DType::I64, DType::I32, DType::I16, DType::I8, DType::U8, DType::BOOL};
  for (DType t : types) w.declare(std::string("t_") + dtype_name(t), t, {3, 5});
  for (DType t : types) {
    std::vector<uint8_t> bytes(15 * dtype_size(t));
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = uint8_t(i * 7 + dtype_size(t));
    if (t == DType::BOOL) for (auto& b : bytes) b &= 1;
    w.write(std::string("t_") + dtype_name(t), bytes.data(), bytes.size());
  }
  w.finish();
  auto f = SafetensorsFile::open(path);
  EXPECT_EQ(f->metadata().at("format"), "pt");
  EXPECT_EQ(f->header_size() % 8, 0u);
  for (DType t : types) {
    const TensorInfo* ti = f->find(std::string("t_") + dtype_name(t));
    ASSERT_NE(ti, nullptr);
    EXPECT_EQ(ti->dtype, t);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(ti->data) % dtype_size(t), 0u) << dtype_name(t);
    std::vector<uint8_t> bytes(15 * dtype_size(t));
    for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = uint8_t(i * 7 + dtype_size(t));
    if (t == DType::BOOL) for (auto& b : bytes) b &= 1;
    EXPECT_EQ(std::memcmp(ti->data, bytes.data(), bytes.size()), 0) << dtype_name(t);
  }
}

TEST_F(Safetensors, MisalignedOffsetsAreCopied) {
  // An unpadded header (13 + 8 bytes before the data) leaves the F32 data misaligned in the mapping.
  std::string h = R"({"b":{"dtype":"U8","shape":[1],"data_offsets":[0,1]},"a":{"dtype":"F32","shape":[2],"data_offsets":[1,9]}})";
  std::string path = (dir_ / "mis.safetensors").string();
  {
    std::ofstream f(path, std::ios::binary);
    uint64_t n = h.size();
    for (int i = 0; i < 8; ++i) f.put(char((n >> (8 * i)) & 0xff));
    f << h;
    f.put(7);
    float v[2] = {1.5f, -2.25f};
    f.write(reinterpret_cast<const char*>(v), 8);
  }
  auto f = SafetensorsFile::open(path);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(f->find("a")->data) % 4, 0u);
  EXPECT_EQ(f->find("a")->to_f32(), (std::vector<float>{1.5f, -2.25f}));
}

TEST_F(Safetensors, WriterCrashLeavesNoFinalFile) {
  std::string path = (dir_ / "crash.safetensors").string();
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    SafetensorsWriter w(path);
    w.declare("a", DType::F32, {1024});
    w.declare("b", DType::F32, {1024});
    std::vector<float> v(1024, 1.0f);
    w.write("a", v.data(), v.size() * 4);
    _exit(3);  // dies before finish(): no destructor, no rename
  }
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 3);
  EXPECT_FALSE(fs::exists(path));
  // An unfinished writer that is destroyed cleans up its temporary file.
  {
    SafetensorsWriter w(path);
    w.declare("a", DType::F32, {4});
    float v[4] = {};
    w.write("a", v, sizeof(v));
  }
  EXPECT_FALSE(fs::exists(path));
  // A killed writer can only leave its temporary file, never a file under the final name; the destroyed
  // writer above removed its own.
  EXPECT_FALSE(fs::exists(path + ".tmp." + std::to_string(::getpid())));
  EXPECT_TRUE(fs::exists(path + ".tmp." + std::to_string(pid)));
}

TEST_F(Safetensors, WriterRejectsMissingOrWrongData) {
  std::string path = (dir_ / "w.safetensors").string();
  SafetensorsWriter w(path);
  w.declare("a", DType::F32, {4});
  w.declare("b", DType::F32, {4});
  float v[4] = {};
  EXPECT_THROW(w.write("a", v, 8), Error);
  EXPECT_THROW(w.write("c", v, 16), Error);
  w.write("a", v, 16);
  EXPECT_THROW(w.finish(), Error);  // b never written
  EXPECT_FALSE(fs::exists(path));
}

class Sharded : public Safetensors {
 protected:
  void shard(const std::string& name, const std::vector<std::string>& tensors) {
    std::map<std::string, HostTensor> m;
    float v[2] = {1, 2};
    for (const auto& t : tensors) m[t] = HostTensor::from_f32({2}, v);
    write_safetensors((dir_ / name).string(), m);
  }
  void index(const std::string& body) { std::ofstream(dir_ / "model.safetensors.index.json") << body; }
  std::string open_dir_error() {
    try {
      Checkpoint::open(dir_.string());
    } catch (const Error& e) {
      return e.what();
    }
    return "";
  }
};

TEST_F(Sharded, OpensAValidIndex) {
  shard("s1.safetensors", {"a", "b"});
  shard("s2.safetensors", {"c"});
  index(R"({"metadata":{"total_size":24},"weight_map":{"a":"s1.safetensors","b":"s1.safetensors","c":"s2.safetensors"}})");
  Checkpoint ck = Checkpoint::open(dir_.string());
  EXPECT_EQ(ck.names(), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(ck.get("c").to_f32(), (std::vector<float>{1, 2}));
  EXPECT_EQ(ck.total_bytes(), 24u);
  EXPECT_THROW(ck.get("d"), Error);
}

TEST_F(Sharded, MissingTensor) {
  shard("s1.safetensors", {"a"});
  index(R"({"weight_map":{"a":"s1.safetensors","b":"s1.safetensors"}})");
  EXPECT_NE(open_dir_error().find("tensor 'b' is listed for s1.safetensors but missing"), std::string::npos) << open_dir_error();
}

TEST_F(Sharded, TensorInTwoShards) {
  shard("s1.safetensors", {"a"});
  shard("s2.safetensors", {"a"});
  index(R"({"weight_map":{"a":"s1.safetensors","x":"s2.safetensors"}})");
  EXPECT_NE(open_dir_error().find("appears in two shards"), std::string::npos) << open_dir_error();
}

TEST_F(Sharded, UnlistedTensor) {
  shard("s1.safetensors", {"a", "b"});
  index(R"({"weight_map":{"a":"s1.safetensors"}})");
  EXPECT_NE(open_dir_error().find("tensor 'b' of s1.safetensors is not listed"), std::string::npos) << open_dir_error();
}

TEST_F(Sharded, ShardOutsideTheFolder) {
  index(R"({"weight_map":{"a":"../s1.safetensors"}})");
  EXPECT_NE(open_dir_error().find("outside the folder"), std::string::npos) << open_dir_error();
}

TEST_F(Sharded, EmptyFolder) {
  EXPECT_NE(open_dir_error().find("no model.safetensors"), std::string::npos);
}

}  // namespace
}  // namespace ling
