// Run a shell command from a test and capture its exit code and combined stdout + stderr.
#pragma once
#include <sys/wait.h>

#include <cstdio>
#include <string>

namespace ling::test {

struct ShellResult {
  int rc = -1;
  std::string text;
};

inline ShellResult sh(const std::string& cmd) {
  ShellResult o;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return o;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) o.text.append(buf, n);
  const int st = pclose(p);
  o.rc = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return o;
}

}  // namespace ling::test
