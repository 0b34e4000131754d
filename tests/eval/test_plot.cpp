// SVG plots: output is well-formed XML (checked by a small strict parser here), has labelled axes for each
// panel kind, escapes text, rejects empty input, and is written atomically.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include "ling/core/error.h"
#include "ling/eval/plot.h"

using namespace ling::eval;

namespace {

bool name_char(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == ':'; }

// Strict well-formedness: balanced tags, quoted attributes, no stray '<' or unknown entities in text.
std::string xml_error(const std::string& s) {
  std::vector<std::string> stack;
  size_t i = 0, roots = 0;
  auto check_text = [&](size_t a, size_t b) -> std::string {
    for (size_t k = a; k < b; ++k) {
      if (s[k] == '&') {
        size_t semi = s.find(';', k);
        if (semi == std::string::npos) return "bare &";
        std::string e = s.substr(k, semi - k + 1);
        if (e != "&amp;" && e != "&lt;" && e != "&gt;" && e != "&quot;" && e != "&apos;") return "entity " + e;
      }
    }
    return "";
  };
  while (i < s.size()) {
    size_t lt = s.find('<', i);
    if (lt == std::string::npos) lt = s.size();
    if (auto e = check_text(i, lt); !e.empty()) return e;
    if (lt == s.size()) break;
    if (s.compare(lt, 5, "<?xml") == 0) {
      size_t end = s.find("?>", lt);
      if (end == std::string::npos) return "unterminated declaration";
      i = end + 2;
      continue;
    }
    bool close = s[lt + 1] == '/';
    size_t k = lt + 1 + (close ? 1 : 0);
    size_t n0 = k;
    while (k < s.size() && name_char(s[k])) ++k;
    std::string name = s.substr(n0, k - n0);
    if (name.empty()) return "empty tag name at " + std::to_string(lt);
    if (close) {
      if (stack.empty() || stack.back() != name) return "mismatched </" + name + ">";
      stack.pop_back();
      if (s[k] != '>') return "bad close tag";
      i = k + 1;
      continue;
    }
    // attributes
    for (;;) {
      while (k < s.size() && std::isspace(static_cast<unsigned char>(s[k]))) ++k;
      if (k >= s.size()) return "unterminated tag";
      if (s[k] == '>' || (s[k] == '/' && s[k + 1] == '>')) break;
      size_t a0 = k;
      while (k < s.size() && name_char(s[k])) ++k;
      if (k == a0 || s[k] != '=' || s[k + 1] != '"') return "bad attribute in <" + name + ">";
      size_t end = s.find('"', k + 2);
      if (end == std::string::npos) return "unterminated attribute";
      if (s.substr(k + 2, end - k - 2).find('<') != std::string::npos) return "< in attribute";
      if (auto e = check_text(k + 2, end); !e.empty()) return e;
      k = end + 1;
    }
    if (stack.empty()) ++roots;
    if (s[k] == '/') {
      i = k + 2;
    } else {
      stack.push_back(name);
      i = k + 1;
    }
  }
  if (!stack.empty()) return "unclosed <" + stack.back() + ">";
  if (roots != 1) return "expected one root element";
  return "";
}

std::vector<PlotRow> sample_rows() {
  std::vector<PlotRow> rows;
  for (std::string run : {"run-a", "run<b>"})
    for (int64_t ctx : {1024, 4096, 16384}) {
      rows.push_back({run, "passkey", "score", "ctx=" + std::to_string(ctx), ctx == 16384 ? 40.0 : 100.0});
      for (int d : {0, 50, 100})
        rows.push_back({run, "passkey", "score", "ctx=" + std::to_string(ctx) + ",depth=" + std::to_string(d),
                        double(d) / 2});
    }
  rows.push_back({"run-a", "ppl", "ppl", "", 12.5});
  rows.push_back({"run<b>", "ppl", "ppl", "", 13.0});
  rows.push_back({"run-a", "kld", "kld_mean", "", 0.03});
  rows.push_back({"run-a", "passkey", "score", "", 80});  // task-level rows are not plotted
  return rows;
}

}  // namespace

TEST(Plot, WellFormedWithAxisLabels) {
  std::string svg = render_svg(sample_rows(), "passkey & ppl");
  EXPECT_EQ(xml_error(svg), "");
  EXPECT_NE(svg.find("context length (tokens, log scale)"), std::string::npos);
  EXPECT_NE(svg.find("needle depth (%)"), std::string::npos);
  EXPECT_NE(svg.find(">score (%)<"), std::string::npos);
  EXPECT_NE(svg.find("ppl: ppl"), std::string::npos);
  EXPECT_NE(svg.find("kld: kld_mean"), std::string::npos);
  EXPECT_NE(svg.find("run&lt;b&gt;"), std::string::npos);
  EXPECT_EQ(svg.find("run<b>"), std::string::npos);
  // 1 line panel + 2 heatmaps + 2 bar panels, each with two axis labels.
  size_t labels = 0;
  for (size_t at = svg.find("class=\"axis-label\""); at != std::string::npos;
       at = svg.find("class=\"axis-label\"", at + 1))
    ++labels;
  EXPECT_EQ(labels, 10u);
}

TEST(Plot, CheckerCatchesBrokenXml) {
  EXPECT_NE(xml_error("<svg><g></svg>"), "");
  EXPECT_NE(xml_error("<svg a=1></svg>"), "");
  EXPECT_NE(xml_error("<svg>a & b</svg>"), "");
  EXPECT_EQ(xml_error("<svg><g x=\"1\"/>t &amp; u</svg>"), "");
}

TEST(Plot, NothingToPlotIsAnError) {
  EXPECT_THROW(render_svg({{"r", "passkey", "score", "", 1}}, "t"), ling::Error);
}

TEST(Plot, AtomicWrite) {
  std::string dir = ::testing::TempDir() + "/plot_atomic";
  std::filesystem::create_directories(dir);
  std::string path = dir + "/out.svg";
  write_file_atomic(path, "first");
  write_file_atomic(path, "second");
  std::ifstream f(path);
  std::string got((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_EQ(got, "second");
  size_t n = 0;
  for (auto& e : std::filesystem::directory_iterator(dir)) (void)e, ++n;
  EXPECT_EQ(n, 1u);  // no temporary left behind
  EXPECT_THROW(write_file_atomic(dir + "/missing/x.svg", "x"), ling::Error);
  std::filesystem::remove_all(dir);
}
