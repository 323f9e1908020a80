// SIGINT / SIGTERM handling: temp files are removed and a sweep saves what it measured.
//
// Design. A signal handler may only call async-signal-safe functions, so it cannot walk C++
// containers or free memory. Two fixed-size, lock-free structures are shared with it:
//  - the temp registry: a static array of slots, each holding a NUL-terminated path and an atomic
//    state (free / file / directory). TempPath (RAII) fills a slot while a temp file or scratch
//    directory exists. The handler unlink()s registered files and empties + rmdir()s registered
//    directories (getdents64 + unlinkat: system calls, no allocation).
//  - the interrupt flag: a std::atomic<int> (lock-free) holding the signal number.
// While a sweep runs it holds an InterruptScope: the first signal only sets the flag, and the
// sweep stops at the next sample boundary (throwing Interrupted), saves the points measured so
// far as partial and exits 2. Without a scope, or on a second signal, the handler removes the
// registered temp paths, writes one line and _exit(2)s at once.
// The registry and the flag are the process's only global mutable state: a signal handler has no
// other way to reach the program's data.
#pragma once
#include <functional>
#include <string>
#include <stdexcept>
#include <string>

namespace bsbr {

// Installs the SIGINT / SIGTERM handlers (main calls it once).
void install_interrupt_handlers();

// Removes every registered temp path now (async-signal-safe; the terminate handler uses it).
void remove_temp_paths();

// Registers a temp file or directory for removal on an interrupt, for its lifetime.
class TempPath {
 public:
  enum class Kind { kFile = 1, kDirectory = 2 };
  TempPath(const std::string& path, Kind kind);
  ~TempPath();
  TempPath(const TempPath&) = delete;
  TempPath& operator=(const TempPath&) = delete;

 private:
  int slot_ = -1;  // -1: the registry was full (the path is then only removed by normal unwinding)
};

// While alive, SIGINT / SIGTERM are deferred to the code that polls interrupted().
class InterruptScope {
 public:
  InterruptScope();
  ~InterruptScope();
  InterruptScope(const InterruptScope&) = delete;
  InterruptScope& operator=(const InterruptScope&) = delete;
};

// The signal that interrupted the process (SIGINT, SIGTERM), or 0.
int interrupted();
// Throws Interrupted when a signal arrived (polled between samples and between points).
void throw_if_interrupted();

// Runs `work`, then polls once more (a signal after the work's last poll still stops the run). If
// it is interrupted or fails, calls save(reason) so the caller writes what it has (marked partial)
// and rethrows; a failure inside save() is swallowed: the original error is the one to report.
void run_saving_partial(const std::function<void()>& work, const std::function<void(const std::string&)>& save);

class Interrupted : public std::runtime_error {
 public:
  explicit Interrupted(int signal);
  int signal() const { return signal_; }

 private:
  int signal_;
};

}  // namespace bsbr
