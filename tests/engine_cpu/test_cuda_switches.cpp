// The CUDA backend's switch list (ling/engine/cuda_switches.h), which builds without CUDA: README's table of
// switches names exactly the listed variables with their defaults, the environment is read as documented (unset
// or empty: the default, "0": off, anything else: on), and the changed-switches line lists only what differs.
#include <gtest/gtest.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "common/scoped_env.h"
#include "ling/engine/cuda_switches.h"

namespace ling::test {
namespace {

// README rows of "### Switches of the CUDA backend": "| `A` / `B` | on / off | … |" → {A: true, B: false}.
std::map<std::string, bool> readme_switches() {
  std::ifstream in(std::string(LING_SOURCE_DIR) + "/README.md");
  EXPECT_TRUE(in.good()) << "README.md not found under " << LING_SOURCE_DIR;
  std::map<std::string, bool> out;
  std::string line;
  bool in_section = false;
  const std::regex name_re("`(LING_CUDA_[A-Z0-9_]+)`");
  while (std::getline(in, line)) {
    if (line.rfind("### ", 0) == 0) in_section = line == "### Switches of the CUDA backend";
    if (!in_section || line.rfind("| `LING_CUDA_", 0) != 0) continue;
    std::vector<std::string> cells;
    std::stringstream ss(line.substr(1));
    for (std::string cell; std::getline(ss, cell, '|');) cells.push_back(cell);
    EXPECT_GE(cells.size(), 3u) << line;
    if (cells.size() < 3) continue;
    std::vector<std::string> names;
    for (std::sregex_iterator it(cells[0].begin(), cells[0].end(), name_re), end; it != end; ++it)
      names.push_back((*it)[1]);
    std::vector<bool> defaults;
    std::stringstream ds(cells[1]);
    for (std::string word; ds >> word;)
      if (word == "on" || word == "off") defaults.push_back(word == "on");
    EXPECT_EQ(names.size(), defaults.size()) << "README switch row: " << line;
    for (size_t i = 0; i < names.size() && i < defaults.size(); ++i) {
      EXPECT_FALSE(out.count(names[i])) << names[i] << " appears twice in README's table";
      out[names[i]] = defaults[i];
    }
  }
  return out;
}

TEST(CudaSwitches, ReadmeTableMatchesTheList) {
  const std::map<std::string, bool> readme = readme_switches();
  const CudaSwitches defaults;
  std::set<std::string> listed;
  for (const CudaSwitch& w : cuda_switch_table()) {
    EXPECT_TRUE(listed.insert(w.env).second) << w.env << " listed twice";
    const auto it = readme.find(w.env);
    if (it == readme.end()) {
      ADD_FAILURE() << w.env << " is not in README's table of switches";
      continue;
    }
    EXPECT_EQ(it->second, defaults.*w.member) << w.env << ": README says " << (it->second ? "on" : "off");
  }
  for (const auto& [name, on] : readme) EXPECT_TRUE(listed.count(name)) << "README lists " << name << ", the code does not";
  EXPECT_EQ(readme.size(), listed.size());
}

TEST(CudaSwitches, EnvironmentAndChangedLine) {
  // Clear every switch, then set three: one on by default turned off, one off turned on, one set empty.
  std::vector<std::unique_ptr<ScopedEnv>> clear;
  for (const CudaSwitch& w : cuda_switch_table()) clear.push_back(std::make_unique<ScopedEnv>(w.env, nullptr));
  EXPECT_EQ(cuda_switches_changed(cuda_switches_from_env()), "");
  ScopedEnv pdl("LING_CUDA_PDL", "0"), lean("LING_CUDA_GATE_UP_LEAN", "yes"), wide("LING_CUDA_GQA_WIDE", "");
  const CudaSwitches s = cuda_switches_from_env();
  EXPECT_FALSE(s.pdl);
  EXPECT_TRUE(s.gate_up_lean);
  EXPECT_TRUE(s.gqa_wide);  // empty: the default
  EXPECT_EQ(cuda_switches_changed(s), "LING_CUDA_PDL=0 LING_CUDA_GATE_UP_LEAN=1");
}

}  // namespace
}  // namespace ling::test
