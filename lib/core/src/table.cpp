// Table printer (see table.h).
#include "ling/core/table.h"

#include <algorithm>

namespace ling {

namespace {
size_t display_width(const std::string& s) {  // code points, not bytes
  size_t n = 0;
  for (unsigned char c : s) n += (c & 0xc0) != 0x80;
  return n;
}
bool numeric(const std::string& s) {
  return !s.empty() && (std::isdigit(static_cast<unsigned char>(s[0])) || s[0] == '-' || s[0] == '+') &&
         std::all_of(s.begin(), s.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)) || c == '.' || c == '-' || c == '+' || c == 'e' || c == '%' || c == ','; });
}
}  // namespace

void Table::print(std::ostream& os) const {
  std::vector<size_t> width(header_.size(), 0);
  auto grow = [&](const std::vector<std::string>& r) {
    for (size_t i = 0; i < r.size() && i < width.size(); ++i) width[i] = std::max(width[i], display_width(r[i]));
  };
  grow(header_);
  for (const auto& r : rows_) grow(r);
  auto line = [&](const std::vector<std::string>& r) {
    std::string out;
    for (size_t i = 0; i < width.size(); ++i) {
      const std::string cell = i < r.size() ? r[i] : "";
      const std::string pad(width[i] - display_width(cell), ' ');
      out += (i ? "  " : "") + (i > 0 && numeric(cell) ? pad + cell : cell + pad);
    }
    while (!out.empty() && out.back() == ' ') out.pop_back();
    os << out << "\n";
  };
  line(header_);
  std::string rule;
  for (size_t i = 0; i < width.size(); ++i) rule += (i ? "  " : "") + std::string(width[i], '-');
  os << rule << "\n";
  for (const auto& r : rows_) line(r);
}

}  // namespace ling
