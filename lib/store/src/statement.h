// Internal: a prepared statement with typed binds and column reads; errors name the database path.
#pragma once
#include <sqlite3.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace ling {

class Statement {
 public:
  Statement(sqlite3* db, const std::string& path, const char* sql);
  ~Statement();
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;

  Statement& bind(int i, int64_t v);
  Statement& bind(int i, int v) { return bind(i, int64_t(v)); }
  Statement& bind(int i, double v);
  Statement& bind(int i, const std::string& v);
  Statement& bind(int i, const char* v) { return bind(i, std::string(v)); }
  Statement& bind(int i, std::nullopt_t);
  Statement& bind_blob(int i, const void* data, size_t n);
  template <typename T>
  Statement& bind(int i, const std::optional<T>& v) { return v ? bind(i, *v) : bind(i, std::nullopt); }

  bool step();  // true while a row is available; retries while the database is busy
  void run() { while (step()) {} }
  int64_t i64(int col) const;
  double f64(int col) const;
  std::string text(int col) const;
  bool is_null(int col) const;
  std::vector<uint8_t> blob(int col) const;

 private:
  sqlite3* db_;
  std::string path_;
  sqlite3_stmt* st_ = nullptr;
};

}  // namespace ling
