// The gnuplot runner (see gnuplot.hpp). gnuplot runs as a child process (posix_spawn, no shell)
// in a private temp directory holding the script, its output and its log.
#include "report/gnuplot.hpp"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <string_view>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>

#include "core/errors.hpp"
#include "core/interrupt.hpp"
#include "core/io.hpp"

extern char** environ;

namespace bsbr {

namespace {

namespace fs = std::filesystem;

// A temp directory removed with its contents when it goes out of scope.
class ScratchDir {
 public:
  ScratchDir() {
    std::string pattern = (fs::temp_directory_path() / "bsbr_gnuplot_XXXXXX").string();
    if (!::mkdtemp(pattern.data())) throw UserError("cannot create a temp directory for gnuplot in " + fs::temp_directory_path().string());
    path_ = pattern;
    registered_ = std::make_unique<TempPath>(pattern, TempPath::Kind::kDirectory);  // an interrupt removes it
  }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  std::string path() const { return path_.string(); }

 private:
  fs::path path_;
  std::unique_ptr<TempPath> registered_;
};

// Runs argv in working directory `cwd` (when not empty) with stdin from /dev/null and stdout +
// stderr into log_path. Returns the exit status, or -1 if the program could not be started (not
// found, not executable) or did not exit normally.
int run_process(const std::vector<std::string>& args, const std::string& log_path, const std::string& cwd = "") {
  std::vector<char*> argv;
  for (const std::string& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  if (!cwd.empty()) posix_spawn_file_actions_addchdir_np(&actions, cwd.c_str());
  pid_t pid = 0;
  const int rc = posix_spawnp(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) return -1;
  int status = 0;
  while (::waitpid(pid, &status, 0) < 0)
    if (errno != EINTR) return -1;
  if (!WIFEXITED(status)) return -1;
  const int code = WEXITSTATUS(status);
  return code == 127 ? -1 : code;  // 127: exec failed in the child
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The first line of gnuplot's log that says what went wrong.
std::string first_error_line(const std::string& log) {
  std::istringstream in(log);
  std::string line, first_nonblank;
  while (std::getline(in, line)) {
    if (line.find_first_not_of(" \t^") == std::string::npos) continue;
    if (first_nonblank.empty()) first_nonblank = line;
    if (line.find("error") != std::string::npos || line.find("Error") != std::string::npos) return line;
  }
  return first_nonblank.empty() ? "no output" : first_nonblank;
}

}  // namespace

std::optional<Gnuplot> Gnuplot::find(const std::string& executable) {
  ScratchDir scratch;
  const std::string log = scratch.file("terminals.txt");
  if (run_process({executable, "-e", "set terminal"}, log) != 0) return std::nullopt;
  const std::string terminals = slurp(log);
  auto lists = [&](const std::string& name) {  // a line "   <name>  <description>"
    std::istringstream in(terminals);
    std::string line;
    while (std::getline(in, line)) {
      std::istringstream words(line);
      std::string first;
      if (words >> first && first == name) return true;
    }
    return false;
  };
  if (lists("pngcairo")) return Gnuplot(executable, "pngcairo");
  if (lists("png")) return Gnuplot(executable, "png");
  return std::nullopt;
}

Gnuplot Gnuplot::require(const std::string& executable) {
  if (auto g = find(executable)) return *g;
  throw UserError("gnuplot (" + executable + ") was not found or has no PNG terminal: install the Debian package gnuplot-nox "
                  "(tools/setup.sh does)");
}

void Gnuplot::render_png(const std::string& script, const std::string& png_path, PngSize size) const {
  ScratchDir scratch;
  const std::string out = scratch.file("plot.png"), script_path = scratch.file("plot.gp"), log = scratch.file("log.txt");
  std::string full = "set terminal " + terminal_ + " size " + std::to_string(size.width) + "," + std::to_string(size.height) +
                     (terminal_ == "pngcairo" ? " noenhanced font \"Sans,11\"" : " noenhanced") + "\n";
  // gnuplot runs inside the scratch directory and names its files relatively: no path (TMPDIR may
  // hold any character) is ever written into the script, only into argv and the spawn's chdir.
  full += "set encoding utf8\nset output \"plot.png\"\n" + script + "\nunset output\n";
  write_file_atomic(script_path, full);
  const int code = run_process({executable_, "plot.gp"}, log, scratch.path());
  if (code != 0)
    throw UserError("gnuplot failed on the plot for " + png_path + ": " + (code < 0 ? "could not run " + executable_ : first_error_line(slurp(log))));
  std::string png = slurp(out);
  if (png.empty()) throw UserError("gnuplot wrote no image for " + png_path + ": " + first_error_line(slurp(log)));
  write_file_atomic(png_path, png);
}

std::string gnuplot_datablock(const std::string& name, const std::string& rows) {
  std::string s = "$" + name + " << EOD\n" + rows;
  if (!rows.empty() && rows.back() != '\n') s += "\n";
  return s + "EOD\n";
}

std::string gnuplot_safe_text(const std::string& text) {
  // Allowed: letters, digits, space and punctuation that gnuplot gives no meaning inside a
  // double-quoted string; UTF-8 sequences of 2-4 bytes (µ, ², —, names in other scripts) are
  // kept whole when well-formed. Everything else becomes '?': ` (command substitution), \ and "
  // (escapes, end of string), ' and @ and $ (quoting, macros, datablocks elsewhere on a line),
  // control characters, malformed UTF-8. A newline is kept: the quoting below writes it as \n.
  static constexpr std::string_view kPunct = " -_.,:;()[]{}+=/*<>%#!?&|~^";
  std::string s;
  for (std::size_t i = 0; i < text.size();) {
    const auto c = static_cast<unsigned char>(text[i]);
    const bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');  // not locale-dependent
    if (alnum || kPunct.find(static_cast<char>(c)) != std::string_view::npos || c == '\n') {
      s += static_cast<char>(c);
      ++i;
      continue;
    }
    const std::size_t len = c >= 0xf0 && c <= 0xf4 ? 4 : c >= 0xe0 ? (c <= 0xef ? 3 : 0) : c >= 0xc2 ? 2 : 0;
    bool ok = len > 0 && i + len <= text.size();
    for (std::size_t k = 1; ok && k < len; ++k) ok = (static_cast<unsigned char>(text[i + k]) & 0xc0) == 0x80;
    if (ok) {
      s.append(text, i, len);
      i += len;
    } else {
      s += '?';
      ++i;
    }
  }
  return s;
}

std::string gnuplot_quote(const std::string& text) {
  std::string s = "\"";
  for (char c : gnuplot_safe_text(text)) s += c == '\n' ? std::string("\\n") : std::string(1, c);
  return s + "\"";
}

}  // namespace bsbr
