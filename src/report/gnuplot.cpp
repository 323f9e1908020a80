// gnuplot runner: temp directory with the data and the script, posix_spawn, atomic rename.
#include "report/gnuplot.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/errors.hpp"
#include "core/io.hpp"

extern char** environ;

namespace bsbr {

namespace fs = std::filesystem;

bool gnuplot_available() {
  const char* path = std::getenv("PATH");
  std::stringstream dirs(path ? path : "/usr/bin:/bin");
  std::string dir;
  while (std::getline(dirs, dir, ':'))
    if (!dir.empty() && ::access((dir + "/gnuplot").c_str(), X_OK) == 0) return true;
  return false;
}

namespace {

// Single quotes for a gnuplot string literal ('' escapes a quote).
std::string quoted(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out + "'";
}

// A fresh private temp directory, removed when the guard goes.
struct TempDir {
  fs::path path;
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "bsbr_plot_XXXXXX").string();
    if (!::mkdtemp(tmpl.data())) throw UserError(std::string("cannot create a temp directory for gnuplot: ") + std::strerror(errno));
    path = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
};

}  // namespace

void render_png(const std::string& png_path, const std::string& script, const std::vector<PlotFile>& data, int width, int height) {
  if (!gnuplot_available()) throw UserError("cannot draw " + png_path + ": gnuplot not found on PATH (install gnuplot-nox; tools/setup.sh does)");
  TempDir tmp;
  for (const PlotFile& f : data) write_file_atomic((tmp.path / f.name).string(), f.content);
  const fs::path target = fs::absolute(png_path);
  std::error_code ec;
  fs::create_directories(target.parent_path(), ec);
  if (ec) throw UserError("cannot create directory " + target.parent_path().string() + ": " + ec.message());
  const std::string partial = target.string() + ".tmp." + std::to_string(::getpid()) + ".png";
  const std::string full = "set terminal pngcairo size " + std::to_string(width) + "," + std::to_string(height) +
                           " noenhanced font 'sans,10'\nset output " + quoted(partial) + "\ncd " + quoted(tmp.path.string()) + "\n" + script +
                           "\nunset output\n";
  const std::string script_path = (tmp.path / "plot.gp").string(), log_path = (tmp.path / "gnuplot.log").string();
  write_file_atomic(script_path, full);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, "/dev/null", O_WRONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  std::string prog = "gnuplot";
  std::vector<char*> argv = {prog.data(), const_cast<char*>(script_path.c_str()), nullptr};
  pid_t pid = 0;
  int rc = ::posix_spawnp(&pid, "gnuplot", &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) throw UserError("cannot draw " + png_path + ": starting gnuplot failed: " + std::strerror(rc));
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0 || !fs::exists(partial)) {
    std::string log;
    std::ifstream in(log_path);
    std::string line;
    while (std::getline(in, line))
      if (!line.empty() && line.find_first_not_of(" ^") != std::string::npos) log = line;  // gnuplot's last message line
    fs::remove(partial, ec);
    throw UserError("gnuplot failed to draw " + png_path + (log.empty() ? std::string() : ": " + log));
  }
  fs::rename(partial, target, ec);
  if (ec) {
    fs::remove(partial, ec);
    throw UserError("cannot write " + png_path + ": " + ec.message());
  }
}

}  // namespace bsbr
