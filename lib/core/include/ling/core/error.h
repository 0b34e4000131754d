// Errors: one exception type for every failure a user can cause or see.
// LING_CHECK(cond, parts...) throws ling::Error whose message is the parts concatenated; the source location
// is kept separately (shown with --log-level debug), so the user sees one clear line such as
//   model.safetensors: tensor 'lm_head.weight': shape [1024, 256] != expected [1024, 128]
// Only main() catches. Never use assert() for input validation (it vanishes under NDEBUG).
#pragma once
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>

namespace ling {

class Error : public std::runtime_error {
 public:
  Error(std::string message, const char* file = "", int line = 0)
      : std::runtime_error(std::move(message)), file_(file), line_(line) {}
  const char* file() const { return file_; }
  int line() const { return line_; }

 private:
  const char* file_;
  int line_;
};

// Concatenate anything streamable into a string: cat("tensor '", name, "': ", n, " values").
template <typename... Ts>
std::string cat(const Ts&... parts) {
  std::ostringstream os;
  (os << ... << parts);
  return os.str();
}

}  // namespace ling

#define LING_THROW(...) throw ::ling::Error(::ling::cat(__VA_ARGS__), __FILE__, __LINE__)
#define LING_CHECK(cond, ...)      \
  do {                             \
    if (!(cond)) LING_THROW(__VA_ARGS__); \
  } while (0)
#define LING_UNREACHABLE(...) LING_THROW("internal error: ", __VA_ARGS__)
