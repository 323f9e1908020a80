// Atomic file writes that never replace a non-regular file, output checks, checked reads.
#include "core/io.hpp"

#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/errors.hpp"
#include "core/interrupt.hpp"

namespace bsbr {

namespace {

namespace fs = std::filesystem;

// What is at `path` when it is there and is not a regular file ("" otherwise). lstat: a symlink
// is reported as a symlink, even one to a regular file (renaming over it would replace the link).
std::string non_regular_kind(const std::string& path) {
  struct stat st {};
  if (::lstat(path.c_str(), &st) != 0) return "";
  if (S_ISREG(st.st_mode)) return "";
  if (S_ISLNK(st.st_mode)) return "a symbolic link";
  if (S_ISDIR(st.st_mode)) return "a directory";
  if (S_ISFIFO(st.st_mode)) return "a FIFO";
  if (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)) return "a device node";
  if (S_ISSOCK(st.st_mode)) return "a socket";
  return "not a regular file";
}

void refuse_non_regular(const std::string& path, const std::string& flag) {
  const std::string kind = non_regular_kind(path);
  if (!kind.empty())
    throw UserError((flag.empty() ? "" : flag + ": ") + "refusing to write " + path + ": it exists and is " + kind +
                    " (only a regular file is replaced); choose another path");
}

// The nearest existing ancestor of dir must be a writable directory (so dir can be created).
void check_directory_usable(const fs::path& dir, const std::string& flag) {
  fs::path p = dir.empty() ? fs::path(".") : dir;
  std::error_code ec;
  while (!fs::exists(fs::symlink_status(p, ec)) && p.has_parent_path() && p.parent_path() != p) p = p.parent_path();
  if (!fs::exists(p, ec)) p = ".";
  const std::string name = (flag.empty() ? "" : flag + ": ") + dir.string();
  if (!fs::is_directory(p, ec)) throw UserError(name + " cannot be used as an output directory: " + p.string() + " is not a directory");
  if (::access(p.c_str(), W_OK | X_OK) != 0)
    throw UserError(name + " cannot be used as an output directory: " + p.string() + " is not writable (" + std::strerror(errno) + ")");
}

}  // namespace

void check_output_path(const std::string& path, const std::string& flag) {
  refuse_non_regular(path, flag);
  check_directory_usable(fs::path(path).parent_path(), flag);
}

void check_output_dir(const std::string& dir, const std::vector<std::string>& files, const std::string& flag) {
  check_directory_usable(fs::path(dir), flag);
  for (const std::string& f : files) refuse_non_regular((fs::path(dir) / f).string(), flag);
}

void write_file_atomic(const std::string& path, const std::string& content) {
  fs::path target(path);
  refuse_non_regular(path, "");
  std::error_code ec;
  if (target.has_parent_path()) {
    fs::create_directories(target.parent_path(), ec);
    if (ec) throw UserError("cannot create directory " + target.parent_path().string() + ": " + ec.message());
  }
  const std::string tmp = path + ".tmp." + std::to_string(::getpid());
  refuse_non_regular(tmp, "");
  TempPath registered(tmp, TempPath::Kind::kFile);  // an interrupt removes it
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw UserError("cannot write " + path + ": " + std::strerror(errno));
    out.write(content.data(), static_cast<std::streamsize>(content.size()));
    out.flush();
    if (!out) {
      std::remove(tmp.c_str());
      throw UserError("cannot write " + path + ": write failed (disk full?)");
    }
  }
  // Checked again just before the rename: the target may have appeared since.
  try {
    refuse_non_regular(path, "");
  } catch (const UserError&) {
    std::remove(tmp.c_str());
    throw;
  }
  fs::rename(tmp, target, ec);
  if (ec) {
    std::remove(tmp.c_str());
    throw UserError("cannot write " + path + ": " + ec.message());
  }
}

std::string read_file(const std::string& path, const std::string& what) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw UserError(what + " not found: " + path);
  if (fs::is_directory(path, ec)) throw UserError(what + " is a directory, not a file: " + path);
  std::ifstream in(path, std::ios::binary);
  if (!in) throw UserError("cannot read " + what + " " + path + ": " + std::strerror(errno));
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace bsbr
