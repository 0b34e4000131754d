// Task generators: exact token counts, determinism (same seed -> same prompt hash), needles present at the
// requested depth order, grid-independence of a cell's prompt, and GSM8K JSONL parsing.
#include <gtest/gtest.h>

#include <cstdio>
#include <fstream>

#include "fakes.h"
#include "ling/core/error.h"
#include "ling/eval/tasks.h"
#include "ling/eval/util.h"

using namespace ling::eval;
using ling::eval::test::FakeTokenizer;

namespace {

TaskOptions grid(uint64_t seed) {
  TaskOptions o;
  o.contexts = {2048, 3001, 4096};
  o.depths = {0, 50, 100};
  o.samples = 2;
  o.seed = seed;
  return o;
}

std::vector<std::string> grid_tasks() {
  std::vector<std::string> out;
  for (auto& n : task_names())
    if (n != "gsm8k" && n != "arith") out.push_back(n);
  return out;
}

}  // namespace

class TaskExact : public ::testing::TestWithParam<std::tuple<std::string, bool>> {};

TEST_P(TaskExact, ExactLengthDeterministicTargetsInPrompt) {
  auto [name, pair] = GetParam();
  FakeTokenizer tok(pair);
  auto a = make_task(name, grid(7));
  auto b = make_task(name, grid(7));
  auto c = make_task(name, grid(8));
  ASSERT_GT(a->size(), 0);
  EXPECT_EQ(a->info().params_json, b->info().params_json);
  int differing = 0;
  for (int64_t i = 0; i < a->size(); ++i) {
    TaskSample s = a->make(i, tok);
    TaskSample t = b->make(i, tok);
    TaskSample u = c->make(i, tok);
    ASSERT_EQ(static_cast<int64_t>(s.prompt.size()), s.context_tokens) << name << " sample " << i;
    ASSERT_EQ(s.prompt.front(), 1) << "BOS first";
    EXPECT_EQ(sha256_ids(s.prompt), sha256_ids(t.prompt)) << name << " sample " << i;
    EXPECT_EQ(s.targets, t.targets);
    differing += sha256_ids(s.prompt) != sha256_ids(u.prompt);
    ASSERT_FALSE(s.targets.empty());
    std::string text = tok.decode(s.prompt);
    for (const auto& target : s.targets) EXPECT_NE(text.find(target), std::string::npos) << name << ": " << target;
  }
  EXPECT_EQ(differing, a->size()) << "another seed must change every prompt";
}

INSTANTIATE_TEST_SUITE_P(AllGridTasks, TaskExact,
                         ::testing::Combine(::testing::ValuesIn(grid_tasks()), ::testing::Bool()),
                         [](const auto& info) {
                           return std::get<0>(info.param) + (std::get<1>(info.param) ? "_pair" : "_byte");
                         });

TEST(Tasks, NeedleDepthOrder) {
  FakeTokenizer tok;
  TaskOptions o = grid(3);
  o.contexts = {4096};
  auto task = make_task("passkey", o);
  // Same repetition at depths 0, 50, 100: samples 0, 2, 4 (2 samples per cell) share no key, so locate each.
  std::vector<size_t> pos;
  for (int64_t i : {0, 2, 4}) {
    TaskSample s = task->make(i, tok);
    std::string text = tok.decode(s.prompt);
    size_t at = text.find("The pass key is " + s.targets[0]);
    ASSERT_NE(at, std::string::npos);
    pos.push_back(at);
  }
  EXPECT_LT(pos[0], 300u);                  // right after the instruction
  EXPECT_GT(pos[1], 1500u);
  EXPECT_LT(pos[1], 2600u);
  EXPECT_GT(pos[2], 3800u);                 // right before the question
}

TEST(Tasks, CellPromptDoesNotDependOnGrid) {
  FakeTokenizer tok;
  TaskOptions small = grid(11), big = grid(11);
  small.contexts = {3001};
  small.depths = {50};
  auto a = make_task("niah_multikey_2", small);
  auto b = make_task("niah_multikey_2", big);
  // In `big`, context 3001 is index 1, depth 50 index 1: idx = ((1*3)+1)*2 + rep.
  for (int rep = 0; rep < 2; ++rep)
    EXPECT_EQ(sha256_ids(a->make(rep, tok).prompt), sha256_ids(b->make(8 + rep, tok).prompt));
}

TEST(Tasks, TooSmallContextIsAClearError) {
  FakeTokenizer tok;
  TaskOptions o = grid(1);
  o.contexts = {64};
  auto t = make_task("niah_single_1", o);
  EXPECT_THROW(t->make(0, tok), ling::Error);
  EXPECT_THROW(make_task("no_such_task", o), ling::Error);
}

TEST(Tasks, ArithAnswersAreConsistentAndDeterministic) {
  FakeTokenizer tok;
  TaskOptions o;
  o.samples = 50;
  o.seed = 5;
  auto a = make_task("arith", o), b = make_task("arith", o);
  ASSERT_EQ(a->size(), 50);
  for (int64_t i = 0; i < a->size(); ++i) {
    TaskSample s = a->make(i, tok);
    EXPECT_EQ(sha256_ids(s.prompt), sha256_ids(b->make(i, tok).prompt));
    ASSERT_EQ(s.targets.size(), 1u);
    EXPECT_FALSE(s.targets[0].empty());
    std::string text = tok.decode(s.prompt);
    EXPECT_EQ(text.rfind("\nAnswer:"), text.size() - 8);
    EXPECT_NE(text.find("#### "), std::string::npos);  // the solved shots
  }
}

TEST(Tasks, Gsm8kJsonl) {
  std::string path = ::testing::TempDir() + "/gsm8k_test.jsonl";
  {
    std::ofstream f(path);
    f << R"({"question": "Shot one?", "answer": "1 + 1 = 2\n#### 2"})" << "\n";
    f << R"({"question": "How much is a thousand dollars and fifty cents?", "answer": "It is\n#### 1,000.50"})" << "\n\n";
    f << R"({"question": "Q3", "answer": "x\n#### -7"})" << "\n";
  }
  TaskOptions o;
  o.data_path = path;
  o.shots = 1;
  o.samples = 10;
  auto t = make_task("gsm8k", o);
  ASSERT_EQ(t->size(), 2);
  FakeTokenizer tok;
  TaskSample s = t->make(0, tok);
  EXPECT_EQ(s.targets, std::vector<std::string>{"1000.50"});
  std::string text = tok.decode(s.prompt);
  EXPECT_EQ(text.substr(0, 20), "Question: Shot one?\n");
  EXPECT_NE(text.find("Question: How much is a thousand"), std::string::npos);
  EXPECT_EQ(t->make(1, tok).targets, std::vector<std::string>{"-7"});
  EXPECT_FALSE(t->info().corpus_sha256.empty());

  {
    std::ofstream f(path);
    f << R"({"question": "no answer marker", "answer": "42"})" << "\n";
  }
  EXPECT_THROW(make_task("gsm8k", o), ling::Error);
  std::remove(path.c_str());
}

TEST(Util, Sha256KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  EXPECT_EQ(sha256_hex(std::string(1000000, 'a')),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Util, Sizes) {
  EXPECT_EQ(parse_size("4K"), 4096);
  EXPECT_EQ(parse_size("1000"), 1000);
  EXPECT_EQ(parse_size("2m"), 2 * 1024 * 1024);
  EXPECT_EQ(parse_size_list("1K,4K"), (std::vector<int64_t>{1024, 4096}));
  EXPECT_THROW(parse_size("4Q"), ling::Error);
  EXPECT_THROW(parse_size("-1"), ling::Error);
  EXPECT_THROW(parse_size(""), ling::Error);
  EXPECT_EQ(format_size(4096), "4K");
  EXPECT_EQ(format_size(3000), "3000");
  EXPECT_EQ(parse_double_list("0,50,100"), (std::vector<double>{0, 50, 100}));
  EXPECT_THROW(parse_double_list("0,x"), ling::Error);
}

TEST(Util, RngStreamIsFixed) {
  // Platform independence: the first outputs of splitmix64 from seed 0 are published constants.
  Rng r(0);
  EXPECT_EQ(r.next(), 0xe220a8397b1dcdafULL);
  EXPECT_EQ(r.next(), 0x6e789e6aa1b965f4ULL);
  Rng a = Rng::derive(1, "x", 2), b = Rng::derive(1, "x", 2), c = Rng::derive(1, "x", 3);
  EXPECT_EQ(a.next(), b.next());
  EXPECT_NE(Rng::derive(1, "x", 2).next(), c.next());
  for (int i = 0; i < 1000; ++i) {
    int64_t v = r.range(-3, 3);
    ASSERT_GE(v, -3);
    ASSERT_LE(v, 3);
  }
}

TEST(Util, DefaultTextIsTheCommittedFile) {
  std::ifstream f(std::string(LING_SOURCE_DIR) + "/eval/data/kjv-genesis-1-4.txt", std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  ASSERT_GT(bytes.size(), 10000u);
  EXPECT_EQ(default_text(), bytes);
}
