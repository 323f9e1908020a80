// File output that is whole or absent, and never replaces what is not a regular file: write to a
// temp file in the same directory, then rename over the target. Temp files (and scratch
// directories) are registered so an interrupt removes them (core/interrupt.hpp).
#pragma once
#include <string>
#include <vector>

namespace bsbr {

// Writes `content` to `path` atomically (temp file + rename); creates parent directories.
// Throws UserError naming the path if the location is not writable, or if `path` exists and is
// not a regular file (a symlink, FIFO, device node, directory, socket): those are never replaced.
void write_file_atomic(const std::string& path, const std::string& content);
// Checks, before any work, that `path` could be written by write_file_atomic: its directory
// exists or can be created, is a directory and is writable, and `path` is absent or a regular
// file. `flag` names the input in the error ("--dump"). Creates nothing.
void check_output_path(const std::string& path, const std::string& flag);
// The same for an output directory and the files the command will write in it.
void check_output_dir(const std::string& dir, const std::vector<std::string>& files, const std::string& flag);
// Reads a whole file; throws UserError naming the path if it cannot be read.
std::string read_file(const std::string& path, const std::string& what);

}  // namespace bsbr
