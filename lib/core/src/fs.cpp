// read_file / write_file_atomic (fs.h).
#include "ling/core/fs.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "ling/core/error.h"

namespace ling {

std::string read_file(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  LING_CHECK(f.good(), path, ": cannot open");
  std::ostringstream ss;
  ss << f.rdbuf();
  LING_CHECK(!f.bad(), path, ": read error");
  return ss.str();
}

void write_file_atomic(const std::string& path, const std::string& content) {
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) LING_THROW(path, ": cannot create (", tmp, ": ", std::strerror(errno), ")");
  const char* p = content.data();
  size_t left = content.size();
  while (left > 0) {
    ssize_t w = ::write(fd, p, left);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) {
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      LING_THROW(path, ": write failed (", std::strerror(err), ")");
    }
    p += w;
    left -= size_t(w);
  }
  const bool synced = ::fsync(fd) == 0;
  ::close(fd);
  if (!synced || ::rename(tmp.c_str(), path.c_str()) != 0) {
    const int err = errno;
    ::unlink(tmp.c_str());
    LING_THROW(path, ": cannot move the temporary file into place (", std::strerror(err), ")");
  }
}

}  // namespace ling
