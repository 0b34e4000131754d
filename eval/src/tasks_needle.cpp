// Needle tasks (eval.md §1.1-§1.2): passkey and RULER niah_* (single 1-3, multikey 1-3, multivalue,
// multiquery) and variable tracking (vt). The grid depth places the first (queried) needle; further needles
// go to seeded random depths. Haystacks: repeat filler, prose lines (essay), or distractor needles.
#include <algorithm>
#include <set>

#include "haystack.h"
#include "ling/core/error.h"
#include "task_common.h"

namespace ling::eval::detail {
namespace {

enum class Hay { Repeat, Essay, Needles };
enum class Kind { Word, Number, Uuid };

struct NiahSpec {
  Hay hay;
  Kind key;
  Kind value;
  int n_keys;     // needles with distinct keys
  int n_values;   // values per key
  int n_queries;  // keys asked for
};

NiahSpec niah_spec(const std::string& name) {
  if (name == "niah_single_1") return {Hay::Repeat, Kind::Word, Kind::Number, 1, 1, 1};
  if (name == "niah_single_2") return {Hay::Essay, Kind::Word, Kind::Number, 1, 1, 1};
  if (name == "niah_single_3") return {Hay::Essay, Kind::Word, Kind::Uuid, 1, 1, 1};
  if (name == "niah_multikey_1") return {Hay::Essay, Kind::Word, Kind::Number, 4, 1, 1};
  if (name == "niah_multikey_2") return {Hay::Needles, Kind::Word, Kind::Number, 1, 1, 1};
  if (name == "niah_multikey_3") return {Hay::Needles, Kind::Uuid, Kind::Uuid, 1, 1, 1};
  if (name == "niah_multivalue") return {Hay::Essay, Kind::Word, Kind::Number, 1, 4, 1};
  if (name == "niah_multiquery") return {Hay::Essay, Kind::Word, Kind::Number, 4, 1, 4};
  LING_THROW("unknown needle task '", name, "'");
}

std::string make_value(Kind k, Rng& rng) {
  switch (k) {
    case Kind::Word: return random_word_key(rng);
    case Kind::Number: return random_number7(rng);
    case Kind::Uuid: return random_uuid(rng);
  }
  return "";
}

const char* kind_plural(Kind k) {
  switch (k) {
    case Kind::Word: return "words";
    case Kind::Number: return "numbers";
    case Kind::Uuid: return "uuids";
  }
  return "";
}

std::string join_keys(const std::vector<std::string>& keys) {
  if (keys.size() == 1) return keys[0];
  std::string s;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (i > 0) s += i + 1 == keys.size() ? ", and " : ", ";
    s += keys[i];
  }
  return s;
}

class ProseTask : public GridTask {
 public:
  ProseTask(TaskInfo info, TaskOptions opt, bool uses_depth, int gen, bool needs_prose)
      : GridTask(std::move(info), std::move(opt), uses_depth, gen) {
    if (needs_prose) {
      if (opt_.text.empty()) opt_.text = std::string(default_text()), opt_.text_name = default_text_name();
      lines_ = split_lines(opt_.text);
      LING_CHECK(!lines_.empty(), "task ", info_.name, ": the haystack text '", opt_.text_name, "' has no lines");
      info_.corpus_sha256 = sha256_hex(opt_.text);
    }
  }

 protected:
  HaystackSpec repeat_hay() const {
    return {[](int64_t) { return std::string(kRepeatFiller); }, [](int64_t) { return int64_t{0}; }};
  }
  HaystackSpec essay_hay() const {
    const auto* lines = &lines_;
    int64_t n = static_cast<int64_t>(lines_.size());
    return {[lines, n](int64_t i) { return (*lines)[static_cast<size_t>(i % n)]; },
            [n](int64_t i) { return i % n; }};
  }
  std::vector<std::string> lines_;
};

class PasskeyTask : public ProseTask {
 public:
  explicit PasskeyTask(const TaskOptions& opt)
      : ProseTask({"passkey", "passkey", "1", "", "", MetricKind::PasskeyExact}, opt, true, 16, false) {
    finish_params();
  }
  void build(const Cell& c, Rng& rng, const TokenizerLike& tok, TaskSample& s) const override {
    std::string key = std::to_string(rng.range(1, 50000));
    std::string prefix =
        "There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. "
        "I will quiz you about the important information there.\n";
    std::string needle = "The pass key is " + key + ". Remember it. " + key + " is the pass key.";
    s.prompt = build_needle_prompt(tok, prefix, repeat_hay(), {{needle, c.depth}},
                                   "What is the pass key? The pass key is", c.context, info_.name);
    s.targets = {key};
  }
};

class NiahTask : public ProseTask {
 public:
  NiahTask(const std::string& name, const TaskOptions& opt)
      : ProseTask({name, "ruler", "1", "", "", MetricKind::StringMatchAll}, opt, true,
                  niah_spec(name).n_values * niah_spec(name).n_queries > 1 ? 128 : 64,
                  niah_spec(name).hay == Hay::Essay),
        spec_(niah_spec(name)) {
    nlohmann::json extra = nlohmann::json::object();
    if (spec_.hay == Hay::Essay) extra["corpus"] = {{"name", opt_.text_name}, {"sha256", info_.corpus_sha256}};
    finish_params(extra);
  }

  void build(const Cell& c, Rng& rng, const TokenizerLike& tok, TaskSample& s) const override {
    const char* type = kind_plural(spec_.value);
    std::set<std::string> used;
    std::vector<std::string> keys;
    while (static_cast<int>(keys.size()) < spec_.n_keys) {
      std::string k = make_value(spec_.key, rng);
      if (used.insert(k).second) keys.push_back(k);
    }
    std::vector<Needle> needles;
    std::vector<std::string> targets;
    for (int k = 0; k < spec_.n_keys; ++k) {
      for (int v = 0; v < spec_.n_values; ++v) {
        std::string value = make_value(spec_.value, rng);
        double depth = needles.empty() ? c.depth : rng.uniform() * 100.0;
        needles.push_back({"One of the special magic " + std::string(type) + " for " + keys[size_t(k)] +
                               " is: " + value + ".",
                           depth});
        if (k < spec_.n_queries) targets.push_back(value);
      }
    }
    std::vector<std::string> queried(keys.begin(), keys.begin() + spec_.n_queries);
    std::string q = join_keys(queried);
    bool many = targets.size() > 1;
    std::string prefix = "Some special magic " + std::string(type) +
                         " are hidden within the following text. Make sure to memorize it. I will quiz you "
                         "about the " + type + " afterwards.\n";
    std::string suffix = std::string(many ? "What are all the special magic " : "What is the special magic ") +
                         type + " for " + q + " mentioned in the provided text? The special magic " + type +
                         " for " + q + " mentioned in the provided text " + (many ? "are" : "is");

    HaystackSpec hay;
    if (spec_.hay == Hay::Repeat) hay = repeat_hay();
    else if (spec_.hay == Hay::Essay) hay = essay_hay();
    else {
      // Distractor needles: key/value drawn per line from a stream of this sample; never a queried key.
      uint64_t seed = s.seed;
      Kind kk = spec_.key, kv = spec_.value;
      std::string t = type;
      hay.unit = [seed, kk, kv, t, used](int64_t i) {
        Rng r = Rng::derive(seed, "distractor", static_cast<uint64_t>(i));
        std::string k;
        do k = make_value(kk, r);
        while (used.count(k));
        return "One of the special magic " + t + " for " + k + " is: " + make_value(kv, r) + ".";
      };
    }
    s.prompt = build_needle_prompt(tok, prefix, hay, needles, suffix, c.context, info_.name);
    s.targets = targets;
  }

 private:
  NiahSpec spec_;
};

// Variable tracking: one chain of 5 variables over 4 hops in the repeat filler; one worked example first.
class VtTask : public ProseTask {
 public:
  explicit VtTask(const TaskOptions& opt)
      : ProseTask({"vt", "ruler", "1", "", "", MetricKind::StringMatchAll}, opt, false, 32, false) {
    finish_params(nlohmann::json{{"chains", 1}, {"hops", 4}});
  }

  static std::vector<std::string> chain(Rng& rng, int name_len, int n, std::string& value) {
    std::set<std::string> seen;
    std::vector<std::string> names;
    while (static_cast<int>(names.size()) < n) {
      std::string v = random_letters(rng, name_len, true);
      if (seen.insert(v).second) names.push_back(v);
    }
    value = std::to_string(rng.range(10000, 99999));
    return names;
  }
  static std::vector<std::string> statements(const std::vector<std::string>& names, const std::string& value) {
    std::vector<std::string> out = {"VAR " + names[0] + " = " + value};
    for (size_t i = 1; i < names.size(); ++i) out.push_back("VAR " + names[i] + " = VAR " + names[i - 1]);
    return out;
  }
  static std::string question(const std::string& value) {
    return "Question: Find all variables that are assigned the value " + value +
           " in the text above. Answer: According to the chain(s) of variable assignment in the text above, 5 "
           "variables are assigned the value " + value + ", they are:";
  }

  void build(const Cell& c, Rng& rng, const TokenizerLike& tok, TaskSample& s) const override {
    std::string ex_value, value;
    auto ex_names = chain(rng, 3, 5, ex_value);
    auto names = chain(rng, 5, 5, value);
    std::string intro = "Memorize and track the chain(s) of variable assignment hidden in the following text.\n\n";
    std::string example = intro;
    for (const auto& st : statements(ex_names, ex_value)) example += std::string(kRepeatFiller) + "\n" + st + "\n";
    example += question(ex_value);
    for (const auto& n : ex_names) example += " " + n;
    example += "\n\n" + intro;
    std::vector<double> depths;
    for (int i = 0; i < 5; ++i) depths.push_back(rng.uniform() * 100.0);
    std::sort(depths.begin(), depths.end());
    std::vector<Needle> needles;
    auto st = statements(names, value);
    for (size_t i = 0; i < st.size(); ++i) needles.push_back({st[i], depths[i]});
    s.prompt = build_needle_prompt(tok, example, repeat_hay(), needles, question(value), c.context, info_.name);
    s.targets = names;
  }
};

}  // namespace

std::unique_ptr<Task> make_needle_task(const std::string& name, const TaskOptions& opt) {
  if (name == "passkey") return std::make_unique<PasskeyTask>(opt);
  return std::make_unique<NiahTask>(name, opt);
}
std::unique_ptr<Task> make_vt_task(const TaskOptions& opt) { return std::make_unique<VtTask>(opt); }

}  // namespace ling::eval::detail
