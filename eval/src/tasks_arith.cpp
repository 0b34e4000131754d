// Reasoning tasks (eval.md §2): synthetic multi-step arithmetic word problems (arith) with GSM8K-style
// answers, and GSM8K-format JSONL (gsm8k, --data). Prompt: `shots` solved examples as
// "Question: ...\nAnswer: ... #### N\n\n", then "Question: {q}\nAnswer:"; stops at a blank line or "Question:".
// Gold answers are integers; the solution text shows every step.
#include <algorithm>
#include <fstream>
#include <sstream>

#include "haystack.h"
#include "ling/core/error.h"
#include "task_common.h"

namespace ling::eval::detail {
namespace {

struct Problem {
  std::string question;
  std::string solution;  // steps ending in "#### N"
  std::string answer;    // N
};

std::string s(int64_t v) { return std::to_string(v); }

// Seven templates: chained purchases, change, legs, rates, variable substitution, modular chain, sorting.
Problem make_problem(Rng& r) {
  Problem p;
  int64_t t = static_cast<int64_t>(r.below(7));
  if (t == 0) {
    int64_t a = r.range(5, 40), b = r.range(2, 9), c = r.range(3, 12), d = r.range(1, a);
    int64_t x = a + b * c, y = x - d;
    p.question = "Tom has " + s(a) + " marbles. He buys " + s(b) + " bags with " + s(c) +
                 " marbles each, then gives " + s(d) + " marbles to his sister. How many marbles does Tom have now?";
    p.solution = "He buys " + s(b) + " * " + s(c) + " = " + s(b * c) + " marbles. He has " + s(a) + " + " +
                 s(b * c) + " = " + s(x) + ". After giving away " + s(d) + " he has " + s(x) + " - " + s(d) +
                 " = " + s(y) + ".";
    p.answer = s(y);
  } else if (t == 1) {
    int64_t pe = r.range(1, 5), nb = r.range(2, 9), x = r.range(2, 10), y = r.range(1, 6);
    int64_t cost = pe * x + nb * y, bill = ((cost / 10) + 1 + int64_t(r.below(3))) * 10;
    p.question = "Pencils cost $" + s(pe) + " each and notebooks cost $" + s(nb) + " each. Maria buys " + s(x) +
                 " pencils and " + s(y) + " notebooks and pays with a $" + s(bill) +
                 " bill. How much change does she get?";
    p.solution = "Pencils: " + s(x) + " * " + s(pe) + " = " + s(pe * x) + ". Notebooks: " + s(y) + " * " + s(nb) +
                 " = " + s(nb * y) + ". Total: " + s(pe * x) + " + " + s(nb * y) + " = " + s(cost) +
                 ". Change: " + s(bill) + " - " + s(cost) + " = " + s(bill - cost) + ".";
    p.answer = s(bill - cost);
  } else if (t == 2) {
    int64_t c = r.range(2, 30), h = r.range(2, 50), sp = r.range(1, 9);
    int64_t legs = 4 * c + 2 * h + 8 * sp;
    p.question = "A farm has " + s(c) + " cows, " + s(h) + " chickens and " + s(sp) +
                 " spiders. How many legs are there in total?";
    p.solution = "Cows: " + s(c) + " * 4 = " + s(4 * c) + ". Chickens: " + s(h) + " * 2 = " + s(2 * h) +
                 ". Spiders: " + s(sp) + " * 8 = " + s(8 * sp) + ". Total: " + s(4 * c) + " + " + s(2 * h) + " + " +
                 s(8 * sp) + " = " + s(legs) + ".";
    p.answer = s(legs);
  } else if (t == 3) {
    int64_t a = r.range(20, 90), d = r.range(2, 7), sold = r.range(10, a * d - 1), g = r.range(0, a * d - sold);
    int64_t left = a * d - sold - g;
    p.question = "A bakery bakes " + s(a) + " loaves a day for " + s(d) + " days. It sells " + s(sold) +
                 " loaves and gives away " + s(g) + ". How many loaves are left?";
    p.solution = "Baked: " + s(a) + " * " + s(d) + " = " + s(a * d) + ". Left: " + s(a * d) + " - " + s(sold) +
                 " - " + s(g) + " = " + s(left) + ".";
    p.answer = s(left);
  } else if (t == 4) {
    int64_t a = r.range(2, 30), b = r.range(1, 20), c = r.range(2, 9), d = r.range(1, 50);
    int64_t y = a + b, z = y * c, w = z - d;
    p.question = "Let x = " + s(a) + ". Let y = x + " + s(b) + ". Let z = y * " + s(c) + ". What is z - " + s(d) + "?";
    p.solution = "y = " + s(a) + " + " + s(b) + " = " + s(y) + ". z = " + s(y) + " * " + s(c) + " = " + s(z) +
                 ". z - " + s(d) + " = " + s(w) + ".";
    p.answer = s(w);
  } else if (t == 5) {
    int64_t a = r.range(10, 99), b = r.range(2, 9), c = r.range(1, 99), m = r.range(7, 23);
    int64_t x = a * b, y = x + c, z = y % m;
    p.question = "Start with " + s(a) + ". Multiply by " + s(b) + ", add " + s(c) +
                 ", then take the remainder when dividing by " + s(m) + ". What is the result?";
    p.solution = s(a) + " * " + s(b) + " = " + s(x) + ". " + s(x) + " + " + s(c) + " = " + s(y) + ". " + s(y) +
                 " mod " + s(m) + " = " + s(z) + ".";
    p.answer = s(z);
  } else {
    std::vector<int64_t> v;
    for (int i = 0; i < 6; ++i) v.push_back(r.range(-50, 200));
    std::string list;
    for (size_t i = 0; i < v.size(); ++i) list += (i ? ", " : "") + s(v[i]);
    std::vector<int64_t> sorted = v;
    std::sort(sorted.rbegin(), sorted.rend());
    int64_t sum = sorted[0] + sorted[1] + sorted[2];
    p.question = "Here are six numbers: " + list + ". What is the sum of the three largest?";
    p.solution = "The three largest are " + s(sorted[0]) + ", " + s(sorted[1]) + " and " + s(sorted[2]) +
                 ". Their sum is " + s(sum) + ".";
    p.answer = s(sum);
  }
  p.solution += "\n#### " + p.answer;
  return p;
}

std::string shots_text(const std::vector<Problem>& shots) {
  std::string t;
  for (const auto& p : shots) t += "Question: " + p.question + "\nAnswer: " + p.solution + "\n\n";
  return t;
}

class ListTask : public Task {
 public:
  const TaskInfo& info() const override { return info_; }
  int64_t size() const override { return static_cast<int64_t>(problems_.size()); }
  TaskSample make(int64_t idx, const TokenizerLike& tok) const override {
    LING_CHECK(idx >= 0 && idx < size(), "task ", info_.name, ": sample index ", idx, " out of range");
    TaskSample smp;
    smp.idx = idx;
    smp.seed = seeds_[size_t(idx)];
    smp.prompt = encode_with_bos(tok, prefix_ + "Question: " + problems_[size_t(idx)].question + "\nAnswer:");
    smp.targets = {problems_[size_t(idx)].answer};
    smp.max_new_tokens = gen_;
    smp.stop = {"\n\n", "Question:"};
    return smp;
  }

 protected:
  TaskInfo info_;
  std::vector<Problem> problems_;
  std::vector<uint64_t> seeds_;
  std::string prefix_;
  int gen_ = 256;
};

class ArithTask : public ListTask {
 public:
  explicit ArithTask(const TaskOptions& opt) {
    LING_CHECK(opt.samples > 0 && opt.shots >= 0, "task arith: --samples must be positive and --shots >= 0");
    info_ = {"arith", "arith", "1", "", "", MetricKind::Gsm8k};
    gen_ = opt.max_new_tokens > 0 ? opt.max_new_tokens : 256;
    Rng shot_rng = Rng::derive(opt.seed, "arith.shots", 0);
    std::vector<Problem> shots;
    for (int i = 0; i < opt.shots; ++i) shots.push_back(make_problem(shot_rng));
    prefix_ = shots_text(shots);
    for (int64_t i = 0; i < opt.samples; ++i) {
      Rng r = Rng::derive(opt.seed, "arith", static_cast<uint64_t>(i));
      seeds_.push_back(r.next());
      Rng body(seeds_.back());
      problems_.push_back(make_problem(body));
    }
    info_.params_json = nlohmann::json{{"samples", opt.samples}, {"shots", opt.shots}, {"max_new_tokens", gen_}}.dump();
  }
};

class Gsm8kTask : public ListTask {
 public:
  explicit Gsm8kTask(const TaskOptions& opt) {
    LING_CHECK(!opt.data_path.empty(), "task gsm8k needs --data FILE.jsonl (lines with \"question\" and \"answer\")");
    std::ifstream in(opt.data_path, std::ios::binary);
    LING_CHECK(in.good(), opt.data_path, ": cannot open");
    std::stringstream all;
    all << in.rdbuf();
    std::string bytes = all.str();
    info_ = {"gsm8k", "gsm8k", "1", "", sha256_hex(bytes), MetricKind::Gsm8k};
    gen_ = opt.max_new_tokens > 0 ? opt.max_new_tokens : 256;
    std::vector<Problem> rows;
    std::istringstream lines(bytes);
    std::string line;
    for (int64_t n = 1; std::getline(lines, line); ++n) {
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      nlohmann::json j;
      try {
        j = nlohmann::json::parse(line);
      } catch (const std::exception& e) {
        LING_THROW(opt.data_path, ":", n, ": not a JSON object (", e.what(), ")");
      }
      LING_CHECK(j.is_object() && j.contains("question") && j["question"].is_string() && j.contains("answer") &&
                     j["answer"].is_string(),
                 opt.data_path, ":", n, ": needs string fields \"question\" and \"answer\"");
      Problem p{j["question"], j["answer"], ""};
      auto pos = p.solution.rfind("####");
      LING_CHECK(pos != std::string::npos, opt.data_path, ":", n, ": answer has no '#### N' line");
      std::string a = p.solution.substr(pos + 4);
      a.erase(0, a.find_first_not_of(" \t"));
      while (!a.empty() && (a.back() == '\r' || a.back() == ' ' || a.back() == '\n')) a.pop_back();
      std::string clean;
      for (char c : a) if (c != ',' && c != '$') clean += c;
      LING_CHECK(!clean.empty(), opt.data_path, ":", n, ": empty answer after '####'");
      p.answer = clean;
      rows.push_back(std::move(p));
    }
    LING_CHECK(static_cast<int64_t>(rows.size()) > opt.shots, opt.data_path, ": ", rows.size(),
               " problems, need more than --shots ", opt.shots);
    prefix_ = shots_text(std::vector<Problem>(rows.begin(), rows.begin() + opt.shots));
    for (size_t i = static_cast<size_t>(opt.shots); i < rows.size() && int64_t(problems_.size()) < opt.samples; ++i) {
      problems_.push_back(rows[i]);
      seeds_.push_back(i);
    }
    info_.params_json = nlohmann::json{{"samples", int64_t(problems_.size())}, {"shots", opt.shots},
                                       {"max_new_tokens", gen_}, {"data_sha256", info_.corpus_sha256}}.dump();
  }
};

}  // namespace

std::unique_ptr<Task> make_arith_task(const TaskOptions& opt) { return std::make_unique<ArithTask>(opt); }
std::unique_ptr<Task> make_gsm8k_task(const TaskOptions& opt) { return std::make_unique<Gsm8kTask>(opt); }

}  // namespace ling::eval::detail
