// Integration tests: the real mediator (reference executor; VGPU_TEST_EXECUTOR=cuda
// on a GPU machine) in one process, the real shim inside unchanged guest
// programs in others, over the local transport.
//
// Every test starts its own mediator on a socket in a fresh temporary folder,
// waits until the socket accepts connections, runs guest processes with
// LD_LIBRARY_PATH pointing at vgpu's shim, and checks their exit codes. A test
// fails when the mediator died on its own, and when it does not stop on SIGTERM.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

extern char** environ;

namespace {

constexpr const char* kMediator = VGPU_MEDIATOR_PATH;
constexpr const char* kGuest = VGPU_GUEST_TEST_PATH;
constexpr const char* kRawClient = VGPU_RAW_CLIENT_PATH;
constexpr const char* kShimDir = VGPU_SHIM_DIR;

// Guests get this long before they count as hung (a failure, never a timing assertion).
constexpr int kGuestTimeoutS = 300;

bool file_exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

std::string read_file(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

std::string tail(const std::string& s, size_t n = 8000) {
  return s.size() <= n ? s : "[...]\n" + s.substr(s.size() - n);
}

std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("killed by signal ") + strsignal(WTERMSIG(status));
  return "status " + std::to_string(status);
}

// Starts argv[0] with stdout and stderr into `log`, stdin from /dev/null, and the
// current environment with `env` (NAME=value) added or replaced. -1 on failure.
pid_t start_process(const std::vector<std::string>& argv, const std::vector<std::string>& env,
                    const std::string& log) {
  std::vector<std::string> envs;
  for (char** e = environ; *e; ++e) {
    const std::string s = *e;
    bool replaced = false;
    for (const std::string& o : env)
      if (s.compare(0, o.find('=') + 1, o, 0, o.find('=') + 1) == 0) replaced = true;
    if (!replaced) envs.push_back(s);
  }
  envs.insert(envs.end(), env.begin(), env.end());
  std::vector<char*> cargv, cenv;
  for (const std::string& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
  cargv.push_back(nullptr);
  for (const std::string& e : envs) cenv.push_back(const_cast<char*>(e.c_str()));
  cenv.push_back(nullptr);

  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&fa, 1, log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_adddup2(&fa, 1, 2);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, cargv[0], &fa, nullptr, cargv.data(), cenv.data());
  posix_spawn_file_actions_destroy(&fa);
  if (rc != 0) {
    std::ofstream(log, std::ios::app) << "posix_spawn " << argv[0] << ": " << std::strerror(rc) << "\n";
    return -1;
  }
  return pid;
}

// Waits for `pid` up to `timeout_s`; on timeout kills it and returns false.
bool wait_process(pid_t pid, int timeout_s, int* status) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
  for (;;) {
    const pid_t r = waitpid(pid, status, WNOHANG);
    if (r == pid) return true;
    if (r < 0 && errno != EINTR) return false;
    if (std::chrono::steady_clock::now() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, status, 0);
      return false;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

bool socket_accepts(const std::string& path) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}

// A guest process that was started and may be waited for.
struct guest {
  std::string name;
  std::string log;
  pid_t pid = -1;
};

class MediatorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/vgpu-it-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr) << std::strerror(errno);
    dir_ = tmpl;
    sock_ = dir_ + "/m.sock";
    log_ = dir_ + "/mediator.log";
    ASSERT_TRUE(file_exists(kMediator)) << "mediator not built: " << kMediator;
    ASSERT_TRUE(file_exists(std::string(kShimDir) + "/libcudart.so.13"))
        << "vgpu's libcudart.so.13 not built in " << kShimDir;
    ASSERT_TRUE(file_exists(kGuest)) << "guest program not built: " << kGuest;

    // The reference executor (CPU) unless VGPU_TEST_EXECUTOR names another (cuda on a GPU machine).
    const char* exe = std::getenv("VGPU_TEST_EXECUTOR");
    const std::string executor = exe && *exe ? exe : "reference";
    pid_ = start_process({kMediator, "--mediator.socket-path=" + sock_, "--mediator.executor=" + executor,
                          "--mediator.log-level=info"},
                         {}, log_);
    ASSERT_GT(pid_, 0) << read_file(log_);
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (!socket_accepts(sock_)) {
      int status = 0;
      if (waitpid(pid_, &status, WNOHANG) == pid_) {
        pid_ = -1;
        FAIL() << "mediator exited before accepting connections (" << describe_status(status) << "):\n"
               << tail(read_file(log_));
      }
      ASSERT_LT(std::chrono::steady_clock::now(), deadline)
          << "mediator's socket " << sock_ << " accepted no connection within 20 s:\n"
          << tail(read_file(log_));
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }

  void TearDown() override {
    for (guest& g : running_)
      if (g.pid > 0) {
        kill(g.pid, SIGKILL);
        waitpid(g.pid, nullptr, 0);
      }
    if (pid_ > 0) {
      EXPECT_TRUE(mediator_alive()) << "the mediator died during the test";
      stop_mediator();
    }
    if (HasFailure()) {
      std::printf("---- mediator log (%s) ----\n%s\n---- end of mediator log ----\n", log_.c_str(),
                  tail(read_file(log_), 20000).c_str());
    } else if (!dir_.empty()) {
      const std::string cmd = "rm -rf '" + dir_ + "'";
      if (std::system(cmd.c_str()) != 0) std::printf("could not remove %s\n", dir_.c_str());
    }
  }

  // True while the mediator runs; reports how it ended otherwise.
  bool mediator_alive() {
    if (pid_ <= 0) return false;
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      ADD_FAILURE() << "mediator exited on its own (" << describe_status(status) << ")";
      pid_ = -1;
      return false;
    }
    return true;
  }

  // SIGTERM, then SIGKILL after 10 s. A mediator that ignores SIGTERM or crashes
  // while shutting down fails the test.
  void stop_mediator() {
    if (pid_ <= 0) return;
    kill(pid_, SIGTERM);
    int status = 0;
    const bool exited = wait_process(pid_, 10, &status);
    pid_ = -1;
    EXPECT_TRUE(exited) << "mediator still running 10 s after SIGTERM (killed)";
    if (exited) {
      const bool clean = (WIFEXITED(status) && (WEXITSTATUS(status) == 0 || WEXITSTATUS(status) == 128 + SIGTERM)) ||
                         (WIFSIGNALED(status) && WTERMSIG(status) == SIGTERM);
      EXPECT_TRUE(clean) << "mediator ended badly on SIGTERM: " << describe_status(status);
    }
  }

  std::vector<std::string> guest_env() const {
    return {"LD_LIBRARY_PATH=" + std::string(kShimDir), "VGPU_SOCKET=" + sock_};
  }

  guest start(const std::string& name, const std::string& program, const std::vector<std::string>& args) {
    guest g;
    g.name = name;
    g.log = dir_ + "/" + name + ".log";
    std::vector<std::string> argv{program};
    argv.insert(argv.end(), args.begin(), args.end());
    g.pid = start_process(argv, guest_env(), g.log);
    running_.push_back(g);
    return g;
  }

  // Waits for a guest and asserts (non-fatally) that it exited with code 0.
  bool finish(guest& g) {
    int status = 0;
    if (g.pid <= 0) {
      ADD_FAILURE() << g.name << " could not be started:\n" << read_file(g.log);
      return false;
    }
    const bool exited = wait_process(g.pid, kGuestTimeoutS, &status);
    for (guest& r : running_)
      if (r.pid == g.pid) r.pid = -1;
    g.pid = -1;
    const std::string out = read_file(g.log);
    if (!exited) {
      ADD_FAILURE() << g.name << " hung: killed after " << kGuestTimeoutS << " s. Output:\n" << tail(out);
      return false;
    }
    const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    EXPECT_TRUE(ok) << g.name << ": " << describe_status(status) << ". Output:\n" << tail(out);
    if (ok) {
      EXPECT_EQ(out.find("FAIL"), std::string::npos) << g.name << " exited 0 but printed FAIL:\n" << tail(out);
      EXPECT_NE(out.find("PASS"), std::string::npos) << g.name << " passed no check:\n" << tail(out);
    }
    return ok;
  }

  bool run_guest(const std::string& name, const std::vector<std::string>& args) {
    guest g = start(name, kGuest, args);
    return finish(g);
  }

  // A raw-protocol misbehaviour while a well-behaved guest keeps working beside it;
  // afterwards the mediator still serves a fresh guest.
  void raw_case(const std::string& subcommand) {
    ASSERT_TRUE(file_exists(kRawClient)) << "raw client not built: " << kRawClient;
    guest soak = start("soak", kGuest, {"soak", "--seconds", "5", "--expect-vgpu"});
    // Let the soak guest connect first, so that the misbehaviour happens beside it.
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    guest raw = start("raw-" + subcommand, kRawClient, {subcommand});
    finish(raw);
    finish(soak);
    ASSERT_TRUE(mediator_alive()) << "the mediator did not survive raw client '" << subcommand << "'";
    run_guest("device-after-" + subcommand, {"device", "--expect-vgpu"});
  }

  // Waits until a running guest printed `text`; false when it exited first or
  // after `timeout_s` (a hang guard).
  bool wait_for_output(const guest& g, const std::string& text, int timeout_s = 120) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
    while (std::chrono::steady_clock::now() < deadline) {
      if (read_file(g.log).find(text) != std::string::npos) return true;
      int status = 0;
      if (waitpid(g.pid, &status, WNOHANG) == g.pid) {
        for (guest& r : running_)
          if (r.pid == g.pid) r.pid = -1;
        ADD_FAILURE() << g.name << " ended (" << describe_status(status) << ") before printing '" << text
                      << "':\n" << tail(read_file(g.log));
        return false;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    ADD_FAILURE() << g.name << " did not print '" << text << "' within " << timeout_s << " s";
    return false;
  }

  // Free device memory as a fresh guest sees it (cudaMemGetInfo); 0 on failure.
  uint64_t free_memory(const std::string& name) {
    guest g = start(name, kGuest, {"meminfo", "--expect-vgpu"});
    if (!finish(g)) return 0;
    const std::string out = read_file(g.log);
    const size_t at = out.find("MEMINFO free=");
    if (at == std::string::npos) {
      ADD_FAILURE() << name << " printed no MEMINFO line:\n" << out;
      return 0;
    }
    return std::strtoull(out.c_str() + at + std::strlen("MEMINFO free="), nullptr, 10);
  }

  std::string dir_, sock_, log_;
  pid_t pid_ = -1;
  std::vector<guest> running_;
};

TEST_F(MediatorTest, Device) { run_guest("device", {"device", "--expect-vgpu"}); }

TEST_F(MediatorTest, Integrity) { run_guest("integrity", {"integrity", "--seed", "1", "--expect-vgpu"}); }

TEST_F(MediatorTest, Async) { run_guest("async", {"async", "--expect-vgpu"}); }

TEST_F(MediatorTest, Errors) {
  run_guest("errors", {"errors", "--expect-vgpu"});
  // A guest that saw all those errors did not spoil the mediator for the next one.
  run_guest("device-after-errors", {"device", "--expect-vgpu"});
}

TEST_F(MediatorTest, Threads) { run_guest("threads", {"threads", "--expect-vgpu"}); }

// Copies whose kind contradicts the pointers: errors (or, host to host, the
// copy), as in NVIDIA's runtime; never a crash of the guest program.
TEST_F(MediatorTest, Misuse) { run_guest("misuse", {"misuse", "--expect-vgpu"}); }

TEST_F(MediatorTest, RawUnknownCall) { raw_case("unknown-call"); }
TEST_F(MediatorTest, RawBadArgs) { raw_case("bad-args"); }
TEST_F(MediatorTest, RawBadDataRef) { raw_case("bad-data-ref"); }
TEST_F(MediatorTest, RawGarbageRecord) { raw_case("garbage-record"); }

TEST_F(MediatorTest, EightGuestsAtOnce) {
  std::vector<guest> gs;
  for (int i = 0; i < 8; ++i)
    gs.push_back(start("integrity-" + std::to_string(i), kGuest,
                       {"integrity", "--seed", std::to_string(i + 1), "--expect-vgpu"}));
  for (guest& g : gs) finish(g);
  ASSERT_TRUE(mediator_alive());
  // Their channels were given back: a ninth guest still gets one.
  run_guest("device-after-eight", {"device", "--expect-vgpu"});
}

TEST_F(MediatorTest, LogsTotalProcessed) {
  run_guest("device", {"device", "--expect-vgpu"});
  run_guest("integrity", {"integrity", "--seed", "5", "--expect-vgpu"});
  ASSERT_TRUE(mediator_alive());
  stop_mediator();
  const std::string log = read_file(log_);
  EXPECT_NE(log.find("Total processed"), std::string::npos)
      << "the mediator never logged 'Total processed':\n" << tail(log);
}

constexpr uint64_t kHoldMiB = 512;

// A guest that exits without freeing anything: its session's memory goes back.
TEST_F(MediatorTest, SessionMemoryFreedWhenGuestExits) {
  const uint64_t before = free_memory("meminfo-before");
  ASSERT_GT(before, kHoldMiB << 20);
  ASSERT_TRUE(run_guest("hold-and-exit", {"hold", "--mib", std::to_string(kHoldMiB), "--expect-vgpu"}));
  // The session ends when the mediator notices the guest is gone; poll for it.
  uint64_t after = 0;
  for (int i = 0; i < 100 && (after = free_memory("meminfo-after-" + std::to_string(i))) < before; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_GE(after, before) << "memory of an exited guest was not given back";
}

// A guest killed while holding memory: its session's memory goes back too.
TEST_F(MediatorTest, SessionMemoryFreedWhenGuestKilled) {
  const uint64_t before = free_memory("meminfo-before");
  ASSERT_GT(before, kHoldMiB << 20);
  guest h = start("hold-until-killed", kGuest,
                  {"hold", "--mib", std::to_string(kHoldMiB), "--release-file", dir_ + "/never", "--expect-vgpu"});
  ASSERT_TRUE(wait_for_output(h, "HOLDING"));
  const uint64_t during = free_memory("meminfo-during");
  EXPECT_LE(during, before - (kHoldMiB << 20)) << "the held allocation does not show in cudaMemGetInfo";
  kill(h.pid, SIGKILL);
  waitpid(h.pid, nullptr, 0);
  for (guest& r : running_) r.pid = -1;
  uint64_t after = 0;
  for (int i = 0; i < 100 && (after = free_memory("meminfo-after-" + std::to_string(i))) < before; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_GE(after, before) << "memory of a killed guest was not given back";
  ASSERT_TRUE(mediator_alive());
}

// A guest cannot name another guest's memory: reads, writes, memsets, copies and
// frees of a foreign pointer are refused, and the owner's data is unchanged.
TEST_F(MediatorTest, GuestsCannotTouchEachOthersMemory) {
  const std::string release = dir_ + "/release";
  guest h = start("owner", kGuest, {"hold", "--mib", "16", "--seed", "3", "--release-file", release, "--expect-vgpu"});
  ASSERT_TRUE(wait_for_output(h, "HOLDING"));
  const std::string out = read_file(h.log);
  const size_t at = out.find("PTR ");
  ASSERT_NE(at, std::string::npos) << out;
  const std::string ptr = out.substr(at + 4, out.find('\n', at) - at - 4);
  run_guest("intruder", {"foreign", "--ptr", ptr, "--expect-vgpu"});
  std::ofstream(release) << "go\n";
  finish(h);
}

// Without a mediator the shim must fail cleanly: error returns and a non-zero
// exit, never a crash or a hang.
TEST_F(MediatorTest, GuestWithoutMediatorFailsCleanly) {
  const std::string saved = sock_;
  sock_ = dir_ + "/nobody-listens.sock";
  guest g = start("no-mediator", kGuest, {"device", "--expect-vgpu"});
  sock_ = saved;
  int status = 0;
  const bool exited = wait_process(g.pid, kGuestTimeoutS, &status);
  running_.clear();
  const std::string out = read_file(g.log);
  ASSERT_TRUE(exited) << "the guest hung without a mediator:\n" << tail(out);
  EXPECT_TRUE(WIFEXITED(status)) << describe_status(status) << ":\n" << tail(out);
  EXPECT_EQ(WEXITSTATUS(status), 1) << "the guest should report failed checks:\n" << tail(out);
  EXPECT_NE(out.find("FAIL"), std::string::npos) << tail(out);
}

// A guest killed in the middle of its work: the mediator survives, frees what it
// held, and serves the next guest.
TEST_F(MediatorTest, GuestKilledMidRun) {
  guest g = start("killed-soak", kGuest, {"soak", "--seconds", "60", "--expect-vgpu"});
  std::this_thread::sleep_for(std::chrono::seconds(2));
  kill(g.pid, SIGKILL);
  int status = 0;
  waitpid(g.pid, &status, 0);
  running_.clear();
  ASSERT_TRUE(mediator_alive());
  run_guest("device-after-kill", {"device", "--expect-vgpu"});
  run_guest("integrity-after-kill", {"integrity", "--seed", "9", "--expect-vgpu"});
}

}  // namespace
