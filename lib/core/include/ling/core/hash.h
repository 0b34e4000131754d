// SHA-256 of bytes or of a file (streamed), as lowercase hex: the identity of configs, tokenizers, weight
// files, prompts and calibration data in the results store (eval.md §8.2).
#pragma once
#include <string>
#include <string_view>

namespace ling {

std::string sha256_hex(std::string_view bytes);
// Streams the file; throws naming the path when it cannot be read.
std::string sha256_file(const std::string& path);

}  // namespace ling
