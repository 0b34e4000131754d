// A plain-text table for terminal output: columns sized to the widest cell (UTF-8 aware), first column left
// aligned, the others left aligned too unless they look numeric.
#pragma once
#include <ostream>
#include <string>
#include <vector>

namespace ling {

class Table {
 public:
  explicit Table(std::vector<std::string> header) : header_(std::move(header)) {}
  void row(std::vector<std::string> cells) { rows_.push_back(std::move(cells)); }
  void print(std::ostream& os) const;

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

}  // namespace ling
