// SHA-256 of bytes or of a file (streamed), as lowercase hex: the identity of configs, tokenizers, weight
// files, prompts and calibration data in the results store (eval.md §8.2).
#pragma once
#include <string>
#include <string_view>

namespace ling {

std::string sha256_hex(std::string_view bytes);
// Streams the file; throws naming the path when it cannot be read.
std::string sha256_file(const std::string& path);
// sha256_file with a per-user cache keyed by (absolute path, size, modification time in ns), kept in
// $LING_CACHE_DIR, else $XDG_CACHE_HOME/ling, else ~/.cache/ling (file sha256.tsv, rewritten atomically): a
// checkpoint of hundreds of GB is hashed once, not on every `ling eval`. A changed size or mtime rehashes; an
// unwritable cache only costs the rehash.
std::string sha256_file_cached(const std::string& path);

}  // namespace ling
