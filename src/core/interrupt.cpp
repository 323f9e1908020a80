// Signal handlers, the temp registry and the interrupt flag (see interrupt.hpp for the design).
#include "core/interrupt.hpp"

#include <cstdint>
#include <fcntl.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <array>
#include <atomic>
#include <csignal>
#include <cstring>

namespace bsbr {

namespace {

constexpr int kSlots = 64;
constexpr std::size_t kPathMax = 4096;

struct Slot {
  std::atomic<int> state{0};  // 0 free, -1 being filled, else TempPath::Kind
  char path[kPathMax];
};

// The only global mutable state of the program (interrupt.hpp says why).
std::array<Slot, kSlots> g_slots;
std::atomic<int> g_signal{0};
std::atomic<int> g_scopes{0};
static_assert(std::atomic<int>::is_always_lock_free, "the signal handler needs lock-free atomics");

void write_str(const char* s) {
  ssize_t ignored = ::write(STDERR_FILENO, s, std::strlen(s));
  (void)ignored;
}

// Empties a directory (one level: the scratch directories hold plain files) and removes it.
// getdents64 and unlinkat are system calls: async-signal-safe, no allocation.
void remove_directory(const char* path) {
  int fd = ::open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW);
  if (fd >= 0) {
    alignas(8) static char buf[8192];  // only the handler uses it, with both signals blocked
    for (;;) {
      long got = ::syscall(SYS_getdents64, fd, buf, sizeof buf);
      if (got <= 0) break;
      for (long off = 0; off < got;) {
        struct Entry {
          uint64_t ino;
          int64_t off;
          unsigned short reclen;
          unsigned char type;
          char name[1];
        };
        const Entry* e = reinterpret_cast<const Entry*>(buf + off);
        if (std::strcmp(e->name, ".") != 0 && std::strcmp(e->name, "..") != 0) ::unlinkat(fd, e->name, 0);
        off += e->reclen;
      }
    }
    ::close(fd);
  }
  ::rmdir(path);
}

void remove_registered() {
  for (Slot& s : g_slots) {
    const int kind = s.state.load();
    if (kind == static_cast<int>(TempPath::Kind::kFile)) ::unlink(s.path);
    if (kind == static_cast<int>(TempPath::Kind::kDirectory)) remove_directory(s.path);
  }
}

extern "C" void on_signal(int sig) {
  int expected = 0;
  const bool first = g_signal.compare_exchange_strong(expected, sig);
  if (first && g_scopes.load() > 0) {
    write_str(sig == SIGINT ? "\ninterrupted (SIGINT): stopping after the current sample; the points so far are saved as partial "
                              "(interrupt again to stop at once)\n"
                            : "\nterminated (SIGTERM): stopping after the current sample; the points so far are saved as partial\n");
    return;
  }
  remove_registered();
  write_str(sig == SIGINT ? "\nerror: interrupted (SIGINT); temporary files removed\n" : "\nerror: terminated (SIGTERM); temporary files removed\n");
  ::_exit(2);
}

}  // namespace

void remove_temp_paths() { remove_registered(); }

void install_interrupt_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_signal;
  sigemptyset(&sa.sa_mask);
  sigaddset(&sa.sa_mask, SIGINT);
  sigaddset(&sa.sa_mask, SIGTERM);
  sa.sa_flags = SA_RESTART;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
}

TempPath::TempPath(const std::string& path, Kind kind) {
  if (path.size() >= kPathMax) return;
  for (int i = 0; i < kSlots; ++i) {
    int expected = 0;
    if (!g_slots[i].state.compare_exchange_strong(expected, -1)) continue;
    std::memcpy(g_slots[i].path, path.c_str(), path.size() + 1);
    g_slots[i].state.store(static_cast<int>(kind));  // published after the path is complete
    slot_ = i;
    return;
  }
}

TempPath::~TempPath() {
  if (slot_ >= 0) g_slots[slot_].state.store(0);
}

InterruptScope::InterruptScope() { g_scopes.fetch_add(1); }
InterruptScope::~InterruptScope() { g_scopes.fetch_sub(1); }

int interrupted() { return g_signal.load(); }

void throw_if_interrupted() {
  if (int s = interrupted()) throw Interrupted(s);
}

Interrupted::Interrupted(int signal)
    : std::runtime_error(signal == SIGTERM ? "terminated (SIGTERM)" : "interrupted (SIGINT)"), signal_(signal) {}

void run_saving_partial(const std::function<void()>& work, const std::function<void(const std::string&)>& save) {
  try {
    work();
    throw_if_interrupted();
  } catch (const Interrupted& e) {
    save(e.what());
    throw;
  } catch (const std::exception& e) {
    try {
      save(std::string("stopped by an error: ") + e.what());
    } catch (const std::exception&) {  // the original error is the one to report
    }
    throw;
  }
}

}  // namespace bsbr
