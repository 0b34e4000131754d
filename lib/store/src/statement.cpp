// Prepared statements over sqlite3 (statement.h). SQLITE_BUSY beyond the busy timeout is retried a bounded
// number of times so concurrent writers wait instead of failing.
#include "statement.h"

#include <chrono>
#include <thread>

#include "ling/core/error.h"

namespace ling {

Statement::Statement(sqlite3* db, const std::string& path, const char* sql) : db_(db), path_(path) {
  if (sqlite3_prepare_v2(db, sql, -1, &st_, nullptr) != SQLITE_OK)
    LING_THROW(path_, ": database error: ", sqlite3_errmsg(db));
}
Statement::~Statement() { sqlite3_finalize(st_); }

#define LING_SQL_BIND(expr) \
  if ((expr) != SQLITE_OK) LING_THROW(path_, ": database bind error: ", sqlite3_errmsg(db_))

Statement& Statement::bind(int i, int64_t v) { LING_SQL_BIND(sqlite3_bind_int64(st_, i, v)); return *this; }
Statement& Statement::bind(int i, double v) { LING_SQL_BIND(sqlite3_bind_double(st_, i, v)); return *this; }
Statement& Statement::bind(int i, const std::string& v) {
  LING_SQL_BIND(sqlite3_bind_text(st_, i, v.data(), int(v.size()), SQLITE_TRANSIENT));
  return *this;
}
Statement& Statement::bind(int i, std::nullopt_t) { LING_SQL_BIND(sqlite3_bind_null(st_, i)); return *this; }
Statement& Statement::bind_blob(int i, const void* data, size_t n) {
  LING_SQL_BIND(sqlite3_bind_blob(st_, i, n ? data : "", int(n), SQLITE_TRANSIENT));
  return *this;
}

bool Statement::step() {
  for (int attempt = 0;; ++attempt) {
    int rc = sqlite3_step(st_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) {
      sqlite3_reset(st_);
      return false;
    }
    if ((rc == SQLITE_BUSY || rc == SQLITE_LOCKED) && attempt < 50) {
      sqlite3_reset(st_);
      std::this_thread::sleep_for(std::chrono::milliseconds(20 + 10 * attempt));
      continue;
    }
    std::string msg = sqlite3_errmsg(db_);
    sqlite3_reset(st_);
    LING_THROW(path_, ": database error: ", msg);
  }
}

int64_t Statement::i64(int c) const { return sqlite3_column_int64(st_, c); }
double Statement::f64(int c) const { return sqlite3_column_double(st_, c); }
bool Statement::is_null(int c) const { return sqlite3_column_type(st_, c) == SQLITE_NULL; }
std::string Statement::text(int c) const {
  const unsigned char* t = sqlite3_column_text(st_, c);
  return t ? std::string(reinterpret_cast<const char*>(t), size_t(sqlite3_column_bytes(st_, c))) : std::string();
}
std::vector<uint8_t> Statement::blob(int c) const {
  const auto* p = static_cast<const uint8_t*>(sqlite3_column_blob(st_, c));
  return p ? std::vector<uint8_t>(p, p + sqlite3_column_bytes(st_, c)) : std::vector<uint8_t>();
}

}  // namespace ling
