// Whole-file reads and atomic whole-file writes. write_file_atomic writes "<path>.tmp.<pid>", fsyncs it and
// renames it onto `path`, so a reader never sees a half-written file; errors name the path.
#pragma once
#include <string>

namespace ling {

std::string read_file(const std::string& path);  // throws "<path>: cannot open" / read errors
void write_file_atomic(const std::string& path, const std::string& content);

}  // namespace ling
