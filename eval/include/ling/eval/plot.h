// Standalone SVG plots of stored metrics (no scripts, no external fonts or files):
//  - score vs context length: one line per (run, task) from buckets "ctx=N" (log2 x axis, 0-100 y axis);
//  - depth x length heatmap per (run, task) from buckets "ctx=N,depth=D" (cell colour red 0 -> green 100);
//  - bars per perplexity/KLD metric (ppl, bits_per_byte, kld_mean, kld_p99, same_top_pct, ppl_ratio), one
//    bar per run.
// Every panel has a title and labelled axes. Write the SVG with ling::write_file_atomic (core/fs.h).
#pragma once
#include <string>
#include <vector>

#include "ling/core/fs.h"

namespace ling::eval {

struct PlotRow {
  std::string run;     // label shown in legends (e.g. a short run id)
  std::string task;
  std::string name;    // metric name
  std::string bucket;
  double value = 0;
};

// Throws ling::Error when the rows hold nothing plottable.
std::string render_svg(const std::vector<PlotRow>& rows, const std::string& title);

using ling::write_file_atomic;

}  // namespace ling::eval
