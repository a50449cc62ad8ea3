// What the integration tests share: starting processes, and a fixture that runs
// the real mediator (reference executor; VGPU_TEST_EXECUTOR=cuda on a GPU machine)
// and guest programs with vgpu's shim over the local transport.
//
// The includer defines VGPU_MEDIATOR_PATH and VGPU_SHIM_DIR (CMake compile
// definitions) and derives its fixture from vgpu_it::MediatorFixture,
// overriding required_programs() with the guest programs it runs.
//
// Every test starts its own mediator on a socket in a fresh temporary folder,
// waits until the socket accepts connections, runs guest processes with
// LD_LIBRARY_PATH pointing at vgpu's shim, and checks their exit codes. A test
// fails when the mediator died on its own, and when it does not stop on SIGTERM.
#pragma once

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
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

extern char** environ;

namespace vgpu_it {

constexpr const char* kMediator = VGPU_MEDIATOR_PATH;
constexpr const char* kShimDir = VGPU_SHIM_DIR;

// Guests get this long before they count as hung (a failure, never a timing assertion).
constexpr int kGuestTimeoutS = 300;

inline bool file_exists(const std::string& p) {
  struct stat st;
  return ::stat(p.c_str(), &st) == 0;
}

inline std::string read_file(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

inline std::string tail(const std::string& s, size_t n = 8000) {
  return s.size() <= n ? s : "[...]\n" + s.substr(s.size() - n);
}

inline std::string describe_status(int status) {
  if (WIFEXITED(status)) return "exit code " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) return std::string("killed by signal ") + strsignal(WTERMSIG(status));
  return "status " + std::to_string(status);
}

// Starts argv[0] with stdout and stderr into `log`, stdin from /dev/null, and the
// current environment with `env` (NAME=value) added or replaced. -1 on failure.
inline pid_t start_process(const std::vector<std::string>& argv, const std::vector<std::string>& env,
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
inline bool wait_process(pid_t pid, int timeout_s, int* status) {
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

inline bool socket_accepts(const std::string& path) {
  const int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  const bool ok = connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
  close(fd);
  return ok;
}

// The executor the tests' mediator runs: reference (CPU) unless VGPU_TEST_EXECUTOR
// names another (cuda on a GPU machine).
inline std::string test_executor() {
  const char* exe = std::getenv("VGPU_TEST_EXECUTOR");
  return exe && *exe ? exe : "reference";
}

// A guest process that was started and may be waited for.
struct guest {
  std::string name;
  std::string log;
  pid_t pid = -1;
};

class MediatorFixture : public ::testing::Test {
 protected:
  // The guest programs this fixture's tests run, as (path, what SetUp says when
  // it is missing); SetUp fails when one is not built.
  virtual std::vector<std::pair<std::string, std::string>> required_programs() const { return {}; }
  // Options added to the mediator's command line (e.g. "--mediator.local-memory-limit-mb=256");
  // called in SetUp, once dir_ exists.
  virtual std::vector<std::string> extra_mediator_args() const { return {}; }

  void SetUp() override {
    char tmpl[] = "/tmp/vgpu-it-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr) << std::strerror(errno);
    dir_ = tmpl;
    sock_ = dir_ + "/m.sock";
    log_ = dir_ + "/mediator.log";
    ASSERT_TRUE(file_exists(kMediator)) << "mediator not built: " << kMediator;
    ASSERT_TRUE(file_exists(std::string(kShimDir) + "/libcudart.so.13"))
        << "vgpu's libcudart.so.13 not built in " << kShimDir;
    for (const auto& [path, what] : required_programs()) ASSERT_TRUE(file_exists(path)) << what << path;

    std::vector<std::string> argv{kMediator, "--mediator.socket-path=" + sock_,
                                  "--mediator.executor=" + test_executor(), "--mediator.log-level=info"};
    const std::vector<std::string> extra = extra_mediator_args();
    // No fixed metrics port unless a test asks: mediators of tests run side by side.
    bool metrics_given = false;
    for (const std::string& a : extra) metrics_given |= a.rfind("--mediator.metrics-listen=", 0) == 0;
    if (!metrics_given) argv.push_back("--mediator.metrics-listen=\"\"");
    argv.insert(argv.end(), extra.begin(), extra.end());
    pid_ = start_process(argv, {}, log_);
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

  std::string dir_, sock_, log_;
  pid_t pid_ = -1;
  std::vector<guest> running_;
};

}  // namespace vgpu_it
