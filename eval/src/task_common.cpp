// Grid walk, key/value makers, word lists and the task registry (tasks.h).
#include "task_common.h"

#include <cmath>

#include "ling/core/error.h"

namespace ling::eval {
namespace detail {

GridTask::GridTask(TaskInfo info, TaskOptions opt, bool uses_depth, int default_gen_tokens)
    : info_(std::move(info)), opt_(std::move(opt)), uses_depth_(uses_depth),
      gen_tokens_(opt_.max_new_tokens > 0 ? opt_.max_new_tokens : default_gen_tokens) {
  LING_CHECK(!opt_.contexts.empty(), "task ", info_.name, ": no context lengths given");
  LING_CHECK(opt_.samples > 0, "task ", info_.name, ": --samples must be positive");
  if (uses_depth_) {
    LING_CHECK(!opt_.depths.empty(), "task ", info_.name, ": no depths given");
    for (double d : opt_.depths)
      LING_CHECK(d >= 0 && d <= 100, "task ", info_.name, ": depth ", d, " is outside 0..100");
  }
}

int64_t GridTask::size() const {
  int64_t nd = uses_depth_ ? static_cast<int64_t>(opt_.depths.size()) : 1;
  return static_cast<int64_t>(opt_.contexts.size()) * nd * opt_.samples;
}

TaskSample GridTask::make(int64_t idx, const TokenizerLike& tok) const {
  LING_CHECK(idx >= 0 && idx < size(), "task ", info_.name, ": sample index ", idx, " out of range");
  int64_t nd = uses_depth_ ? static_cast<int64_t>(opt_.depths.size()) : 1;
  Cell c;
  c.rep = idx % opt_.samples;
  int64_t di = (idx / opt_.samples) % nd;
  c.context = opt_.contexts[static_cast<size_t>(idx / opt_.samples / nd)];
  c.depth = uses_depth_ ? opt_.depths[static_cast<size_t>(di)] : -1.0;
  // The seed depends on the cell, not on the grid's shape: the same cell gives the same prompt in any grid.
  uint64_t cell_key = static_cast<uint64_t>(c.context) * 1000003ULL +
                      static_cast<uint64_t>(std::llround((c.depth + 1) * 1000)) * 7919ULL +
                      static_cast<uint64_t>(c.rep) * 0x9e3779b97f4a7c15ULL;
  Rng rng = Rng::derive(opt_.seed, info_.name, cell_key);
  TaskSample s;
  s.idx = idx;
  s.seed = rng.next();
  s.context_tokens = c.context;
  s.depth_pct = c.depth;
  s.max_new_tokens = gen_tokens_;
  Rng body(s.seed);
  build(c, body, tok, s);
  return s;
}

void GridTask::finish_params(nlohmann::json extra) {
  nlohmann::json p = std::move(extra);
  p["contexts"] = opt_.contexts;
  if (uses_depth_) p["depths"] = opt_.depths;
  p["samples"] = opt_.samples;
  p["max_new_tokens"] = gen_tokens_;
  info_.params_json = p.dump();
}

namespace {
const char* kAdjectives[] = {
    "able", "ancient", "bitter", "bold", "brave", "bright", "broad", "calm", "cheerful", "clever", "cold",
    "curious", "damp", "dark", "deep", "eager", "early", "elegant", "empty", "faint", "fancy", "fierce",
    "fresh", "gentle", "giant", "glad", "golden", "grand", "green", "happy", "heavy", "hollow", "humble",
    "icy", "jolly", "kind", "large", "late", "lazy", "little", "lively", "lonely", "loud", "lucky", "mighty",
    "modern", "narrow", "nimble", "noisy", "odd", "old", "pale", "plain", "polite", "proud", "quick", "quiet",
    "rapid", "rare", "rich", "rough", "round", "royal", "rusty", "salty", "sharp", "shiny", "silent", "silver",
    "simple", "sleepy", "slow", "small", "smooth", "soft", "solid", "sour", "spicy", "steady", "steep",
    "sticky", "strong", "sunny", "sweet", "swift", "tall", "tame", "tender", "thick", "thin", "tidy", "tiny",
    "tough", "vast", "warm", "weary", "wet", "wide", "wild", "wise", "young", "zealous"};
const char* kNouns[] = {
    "anchor", "apple", "arrow", "badge", "basket", "beach", "bell", "bicycle", "blanket", "boat", "bottle",
    "bridge", "brush", "bucket", "button", "cabin", "camera", "candle", "canyon", "carpet", "castle", "chair",
    "cherry", "circle", "cloud", "coffee", "compass", "cookie", "cottage", "crayon", "crown", "cup", "desert",
    "diamond", "dolphin", "door", "dragon", "drum", "eagle", "engine", "falcon", "feather", "fence", "field",
    "flag", "flower", "forest", "fountain", "garden", "gate", "glove", "guitar", "hammer", "harbor", "helmet",
    "honey", "island", "jacket", "jungle", "kettle", "kite", "ladder", "lantern", "lemon", "lizard", "magnet",
    "meadow", "mirror", "monkey", "mountain", "needle", "ocean", "orange", "owl", "paddle", "panda", "parrot",
    "pebble", "pencil", "piano", "pillow", "planet", "pocket", "puzzle", "rabbit", "river", "rocket", "saddle",
    "sandal", "scarf", "shadow", "shell", "ship", "spoon", "star", "statue", "stone", "tiger", "tower", "train",
    "tulip", "turtle", "umbrella", "valley", "violin", "wagon", "whistle", "window", "wolf", "zebra"};
}  // namespace

std::string random_word_key(Rng& rng) {
  constexpr uint64_t na = sizeof(kAdjectives) / sizeof(kAdjectives[0]);
  constexpr uint64_t nn = sizeof(kNouns) / sizeof(kNouns[0]);
  std::string a = kAdjectives[rng.below(na)];
  return a + "-" + kNouns[rng.below(nn)];
}

std::string random_number7(Rng& rng) { return std::to_string(rng.range(1000000, 9999999)); }

std::string random_uuid(Rng& rng) {
  static const char* hex = "0123456789abcdef";
  std::string s;
  for (int i = 0; i < 32; ++i) {
    int v = static_cast<int>(rng.below(16));
    if (i == 12) v = 4;                   // version 4
    if (i == 16) v = 8 + (v & 3);         // variant 10xx
    s += hex[v];
    if (i == 7 || i == 11 || i == 15 || i == 19) s += '-';
  }
  return s;
}

std::string random_letters(Rng& rng, int n, bool upper) {
  std::string s;
  for (int i = 0; i < n; ++i) s += static_cast<char>((upper ? 'A' : 'a') + rng.below(26));
  return s;
}

const std::vector<std::string>& common_words() {
  static const std::vector<std::string> words = [] {
    std::vector<std::string> w;
    for (const char* a : kAdjectives) w.emplace_back(a);
    for (const char* n : kNouns) w.emplace_back(n);
    return w;
  }();
  return words;
}

std::vector<std::string> split_lines(const std::string& text) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start < text.size()) {
    size_t end = text.find('\n', start);
    if (end == std::string::npos) end = text.size();
    std::string line = text.substr(start, end - start);
    while (!line.empty() && (line.back() == '\r' || line.back() == ' ')) line.pop_back();
    if (!line.empty()) out.push_back(line);
    start = end + 1;
  }
  return out;
}

}  // namespace detail

const std::vector<std::string>& task_names() {
  static const std::vector<std::string> names = {
      "passkey",         "niah_single_1",   "niah_single_2",   "niah_single_3", "niah_multikey_1",
      "niah_multikey_2", "niah_multikey_3", "niah_multivalue", "niah_multiquery", "vt",
      "cwe",             "fwe",             "arith",           "gsm8k"};
  return names;
}

std::unique_ptr<Task> make_task(const std::string& name, const TaskOptions& opt) {
  if (name == "passkey" || name.rfind("niah_", 0) == 0) return detail::make_needle_task(name, opt);
  if (name == "vt") return detail::make_vt_task(opt);
  if (name == "cwe") return detail::make_cwe_task(opt);
  if (name == "fwe") return detail::make_fwe_task(opt);
  if (name == "arith") return detail::make_arith_task(opt);
  if (name == "gsm8k") return detail::make_gsm8k_task(opt);
  std::string all;
  for (auto& n : task_names()) all += (all.empty() ? "" : ", ") + n;
  LING_THROW("unknown task '", name, "' (known: ", all, ", ppl, kld)");
}

}  // namespace ling::eval
