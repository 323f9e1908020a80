// File output that is whole or absent: write to a temp file in the same directory, then rename.
#pragma once
#include <string>

namespace bsbr {

// Writes `content` to `path` atomically (temp file + rename); creates parent directories.
// Throws UserError if the location is not writable.
void write_file_atomic(const std::string& path, const std::string& content);
// Reads a whole file; throws UserError naming the path if it cannot be read.
std::string read_file(const std::string& path, const std::string& what);

}  // namespace bsbr
