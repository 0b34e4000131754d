// SVG rendering of metric rows (plot.h). Layout: a column of 960 x 380 panels (legends on the right).
#include "ling/eval/plot.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "ling/core/error.h"
#include "ling/eval/util.h"

namespace ling::eval {
namespace {

constexpr double kW = 960, kH = 380, kL = 80, kR = 400, kT = 50, kB = 60;  // panel size and margins
const char* kColors[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                         "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

std::string esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      case '\'': o += "&apos;"; break;
      default:
        if (static_cast<unsigned char>(c) >= 0x20 || c == '\n' || c == '\t') o += c;
    }
  }
  return o;
}

std::string num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", v);
  return b;
}
std::string label(double v) {
  char b[32];
  if (std::fabs(v) >= 1000 || (std::fabs(v) < 0.01 && v != 0)) std::snprintf(b, sizeof b, "%.3g", v);
  else std::snprintf(b, sizeof b, "%.4g", v);
  return b;
}

// Parse "ctx=4096" / "ctx=4096,depth=50" buckets.
bool parse_bucket(const std::string& b, int64_t& ctx, double& depth, bool& has_depth) {
  if (b.rfind("ctx=", 0) != 0) return false;
  size_t comma = b.find(',');
  try {
    ctx = std::stoll(b.substr(4, comma == std::string::npos ? std::string::npos : comma - 4));
    has_depth = comma != std::string::npos && b.compare(comma + 1, 6, "depth=") == 0;
    if (comma != std::string::npos && !has_depth) return false;
    depth = has_depth ? std::stod(b.substr(comma + 7)) : -1;
  } catch (const std::exception&) {
    return false;
  }
  return true;
}

struct Panel {
  std::ostringstream svg;
  double y0;  // top of the panel
  double px(double fx) const { return kL + fx * (kW - kL - kR); }           // fx in [0, 1]
  double py(double fy) const { return y0 + kH - kB - fy * (kH - kT - kB); }  // fy in [0, 1]
};

void frame(Panel& p, const std::string& title, const std::string& xlabel, const std::string& ylabel) {
  p.svg << "<g class=\"panel\">\n";
  p.svg << "<text x=\"" << num(kL) << "\" y=\"" << num(p.y0 + 28) << "\" font-size=\"16\" font-weight=\"bold\">"
        << esc(title) << "</text>\n";
  p.svg << "<line x1=\"" << num(p.px(0)) << "\" y1=\"" << num(p.py(0)) << "\" x2=\"" << num(p.px(1)) << "\" y2=\""
        << num(p.py(0)) << "\" stroke=\"black\"/>\n";
  p.svg << "<line x1=\"" << num(p.px(0)) << "\" y1=\"" << num(p.py(0)) << "\" x2=\"" << num(p.px(0)) << "\" y2=\""
        << num(p.py(1)) << "\" stroke=\"black\"/>\n";
  p.svg << "<text class=\"axis-label\" x=\"" << num(p.px(0.5)) << "\" y=\"" << num(p.y0 + kH - 15)
        << "\" text-anchor=\"middle\" font-size=\"13\">" << esc(xlabel) << "</text>\n";
  double cy = p.py(0.5);
  p.svg << "<text class=\"axis-label\" x=\"20\" y=\"" << num(cy) << "\" text-anchor=\"middle\" font-size=\"13\" "
        << "transform=\"rotate(-90 20 " << num(cy) << ")\">" << esc(ylabel) << "</text>\n";
}

void ytick(Panel& p, double fy, const std::string& text) {
  p.svg << "<line x1=\"" << num(p.px(0) - 5) << "\" y1=\"" << num(p.py(fy)) << "\" x2=\"" << num(p.px(0))
        << "\" y2=\"" << num(p.py(fy)) << "\" stroke=\"black\"/><text x=\"" << num(p.px(0) - 8) << "\" y=\""
        << num(p.py(fy) + 4) << "\" text-anchor=\"end\" font-size=\"11\">" << esc(text) << "</text>\n";
}
void xtick(Panel& p, double fx, const std::string& text) {
  p.svg << "<line x1=\"" << num(p.px(fx)) << "\" y1=\"" << num(p.py(0)) << "\" x2=\"" << num(p.px(fx))
        << "\" y2=\"" << num(p.py(0) + 5) << "\" stroke=\"black\"/><text x=\"" << num(p.px(fx)) << "\" y=\""
        << num(p.py(0) + 18) << "\" text-anchor=\"middle\" font-size=\"11\">" << esc(text) << "</text>\n";
}
void legend(Panel& p, size_t i, const std::string& color, const std::string& text) {
  double y = p.y0 + kT + 18.0 * double(i);
  p.svg << "<rect x=\"" << num(kW - kR + 15) << "\" y=\"" << num(y) << "\" width=\"12\" height=\"12\" fill=\""
        << color << "\"/><text x=\"" << num(kW - kR + 32) << "\" y=\"" << num(y + 10) << "\" font-size=\"11\">"
        << esc(text) << "</text>\n";
}

std::string heat_color(double v) {  // 0 -> red, 50 -> yellow, 100 -> green
  double t = std::clamp(v / 100.0, 0.0, 1.0);
  int r = t < 0.5 ? 215 : static_cast<int>(215 - (t - 0.5) * 2 * 175);
  int g = t < 0.5 ? static_cast<int>(48 + t * 2 * 167) : 215 - static_cast<int>((t - 0.5) * 2 * 55);
  char b[16];
  std::snprintf(b, sizeof b, "#%02x%02x%02x", r, g, 60);
  return b;
}

}  // namespace

std::string render_svg(const std::vector<PlotRow>& rows, const std::string& title) {
  // Lines: (metric name) -> (run|task) -> ctx -> value.
  std::map<std::string, std::map<std::string, std::map<int64_t, double>>> lines;
  // Heatmaps: (run|task|metric) -> (ctx, depth) -> value.
  std::map<std::string, std::map<std::pair<int64_t, double>, double>> heat;
  // Bars: metric -> run -> value.
  static const std::set<std::string> bar_metrics = {"ppl",     "bits_per_byte", "kld_mean",
                                                    "kld_p99", "same_top_pct",  "ppl_ratio"};
  std::map<std::string, std::map<std::string, double>> bars;
  for (const auto& r : rows) {
    if (!std::isfinite(r.value)) continue;
    int64_t ctx;
    double depth;
    bool has_depth;
    if ((r.task == "ppl" || r.task == "kld") && r.bucket.empty() && bar_metrics.count(r.name)) {
      bars[r.task + ": " + r.name][r.run] = r.value;
    } else if (parse_bucket(r.bucket, ctx, depth, has_depth)) {
      if (has_depth) heat[r.run + " | " + r.task + " | " + r.name][{ctx, depth}] = r.value;
      else lines[r.name][r.run + " | " + r.task][ctx] = r.value;
    }
  }
  const size_t n_panels = lines.size() + heat.size() + bars.size();
  LING_CHECK(n_panels > 0, "plot: nothing to plot (no per-context scores, needle grids or perplexity/KLD metrics)");

  std::ostringstream out;
  const double height = 40 + kH * double(n_panels);
  out << "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << num(kW)
      << "\" height=\"" << num(height) << "\" viewBox=\"0 0 " << num(kW) << " " << num(height)
      << "\" font-family=\"sans-serif\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n"
      << "<text x=\"" << num(kW / 2) << "\" y=\"26\" text-anchor=\"middle\" font-size=\"18\">" << esc(title)
      << "</text>\n";
  double y0 = 40;

  for (const auto& [metric, series] : lines) {
    Panel p;
    p.y0 = y0;
    std::set<int64_t> all_ctx;
    for (auto& [s, pts] : series)
      for (auto& [c, v] : pts) all_ctx.insert(c);
    double lo = std::log2(double(*all_ctx.begin())), hi = std::log2(double(*all_ctx.rbegin()));
    auto fx = [&](int64_t c) { return hi > lo ? (std::log2(double(c)) - lo) / (hi - lo) : 0.5; };
    frame(p, metric + " vs context length", "context length (tokens, log scale)", metric + " (%)");
    for (int t = 0; t <= 100; t += 20) ytick(p, t / 100.0, std::to_string(t));
    for (int64_t c : all_ctx) xtick(p, fx(c), format_size(c));
    size_t i = 0;
    for (const auto& [s, pts] : series) {
      std::string color = kColors[i % 10];
      p.svg << "<polyline fill=\"none\" stroke=\"" << color << "\" stroke-width=\"2\" points=\"";
      for (auto& [c, v] : pts) p.svg << num(p.px(fx(c))) << "," << num(p.py(std::clamp(v, 0.0, 100.0) / 100)) << " ";
      p.svg << "\"/>\n";
      for (auto& [c, v] : pts)
        p.svg << "<circle cx=\"" << num(p.px(fx(c))) << "\" cy=\"" << num(p.py(std::clamp(v, 0.0, 100.0) / 100))
              << "\" r=\"3.5\" fill=\"" << color << "\"><title>" << esc(s) << ": " << format_size(c) << " -> "
              << label(v) << "</title></circle>\n";
      legend(p, i++, color, s);
    }
    p.svg << "</g>\n";
    out << p.svg.str();
    y0 += kH;
  }

  for (const auto& [key, cells] : heat) {
    Panel p;
    p.y0 = y0;
    std::vector<int64_t> ctxs;
    std::vector<double> depths;
    for (auto& [cd, v] : cells) ctxs.push_back(cd.first), depths.push_back(cd.second);
    std::sort(ctxs.begin(), ctxs.end());
    ctxs.erase(std::unique(ctxs.begin(), ctxs.end()), ctxs.end());
    std::sort(depths.begin(), depths.end());
    depths.erase(std::unique(depths.begin(), depths.end()), depths.end());
    frame(p, key + " (needle depth x context length)", "context length (tokens)", "needle depth (%)");
    double cw = 1.0 / double(ctxs.size()), ch = 1.0 / double(depths.size());
    for (size_t xi = 0; xi < ctxs.size(); ++xi) xtick(p, (double(xi) + 0.5) * cw, format_size(ctxs[xi]));
    for (size_t yi = 0; yi < depths.size(); ++yi) ytick(p, (double(yi) + 0.5) * ch, label(depths[yi]));
    for (auto& [cd, v] : cells) {
      size_t xi = size_t(std::lower_bound(ctxs.begin(), ctxs.end(), cd.first) - ctxs.begin());
      size_t yi = size_t(std::lower_bound(depths.begin(), depths.end(), cd.second) - depths.begin());
      double x = p.px(double(xi) * cw), y = p.py(double(yi + 1) * ch);
      double w = p.px(double(xi + 1) * cw) - x, h = p.py(double(yi) * ch) - y;
      p.svg << "<rect x=\"" << num(x) << "\" y=\"" << num(y) << "\" width=\"" << num(w) << "\" height=\"" << num(h)
            << "\" fill=\"" << heat_color(v) << "\" stroke=\"white\"><title>" << format_size(cd.first) << ", depth "
            << label(cd.second) << "%: " << label(v) << "</title></rect>\n";
      if (w > 28 && h > 14)
        p.svg << "<text x=\"" << num(x + w / 2) << "\" y=\"" << num(y + h / 2 + 4)
              << "\" text-anchor=\"middle\" font-size=\"10\">" << label(v) << "</text>\n";
    }
    for (int k = 0; k <= 4; ++k) legend(p, size_t(k), heat_color(25.0 * k), "score " + std::to_string(25 * k));
    p.svg << "</g>\n";
    out << p.svg.str();
    y0 += kH;
  }

  for (const auto& [metric, per_run] : bars) {
    Panel p;
    p.y0 = y0;
    double vmax = 0;
    for (auto& [r, v] : per_run) vmax = std::max(vmax, v);
    if (vmax <= 0) vmax = 1;
    vmax *= 1.1;
    frame(p, metric, "run", metric);
    for (int k = 0; k <= 4; ++k) ytick(p, k / 4.0, label(vmax * k / 4.0));
    double bw = 1.0 / double(per_run.size());
    size_t i = 0;
    for (auto& [r, v] : per_run) {
      double x = p.px((double(i) + 0.15) * bw), w = p.px((double(i) + 0.85) * bw) - x;
      double top = p.py(std::max(0.0, v) / vmax);
      p.svg << "<rect x=\"" << num(x) << "\" y=\"" << num(top) << "\" width=\"" << num(w) << "\" height=\""
            << num(p.py(0) - top) << "\" fill=\"" << kColors[i % 10] << "\"><title>" << esc(r) << ": " << label(v)
            << "</title></rect>\n<text x=\"" << num(x + w / 2) << "\" y=\"" << num(top - 4)
            << "\" text-anchor=\"middle\" font-size=\"11\">" << label(v) << "</text>\n";
      xtick(p, (double(i) + 0.5) * bw, r.size() > 16 ? r.substr(0, 16) : r);
      ++i;
    }
    p.svg << "</g>\n";
    out << p.svg.str();
    y0 += kH;
  }
  out << "</svg>\n";
  return out.str();
}

}  // namespace ling::eval
