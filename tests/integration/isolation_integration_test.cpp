// Multi-tenant isolation against the real mediator (reference executor; cuda on a
// GPU machine with VGPU_TEST_EXECUTOR=cuda).
//
// integration.isolation.*: one guest process creates and holds one handle of
// every kind (device pointer, stream, event, cuBLAS and cuBLASLt handles, graph
// and graph exec, VMM physical allocation and address reservation) and prints the
// host ids it got; a second process sends those very ids in raw wire messages
// (vgpu-raw-client forge: a guest's handle objects are process-local, so forging
// the id is the honest attack). Every use must be refused, the owner's memory and
// handles must be intact afterwards, and the forger must keep working.
//
// integration.cycles.*: 500 guests connect, allocate one of everything and are
// SIGKILLed at a random point (or exit without freeing); afterwards the
// mediator's RSS, the executor's bytes in use and the session count are back
// to their baseline. No timing assertions: the only limits are hang guards.
#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <cstdlib>
#include <random>
#include <regex>

#include "mediator_fixture.h"

namespace {

constexpr const char* kRawClient = VGPU_RAW_CLIENT_PATH;
constexpr const char* kVgpuctl = VGPU_VGPUCTL_PATH;

bool has(const std::string& text, const std::string& what) { return text.find(what) != std::string::npos; }

class IsolationFixture : public vgpu_it::MediatorFixture {
 protected:
  std::vector<std::pair<std::string, std::string>> required_programs() const override {
    return {{kRawClient, "vgpu-raw-client not built: "}, {kVgpuctl, "vgpuctl not built: "}};
  }
  std::vector<std::string> extra_mediator_args() const override {
    return {"--mediator.metrics-listen=127.0.0.1:0", "--mediator.control-socket=" + dir_ + "/control.sock"};
  }

  std::string vgpuctl_status() {
    const std::string log = dir_ + "/vgpuctl.out";
    const pid_t pid = vgpu_it::start_process({kVgpuctl, "--socket", dir_ + "/control.sock", "status"}, {}, log);
    int status = 0;
    if (pid <= 0 || !vgpu_it::wait_process(pid, 60, &status)) return "";
    return vgpu_it::read_file(log);
  }

  // Sessions now, from `vgpuctl status` ("totals ... N session(s) now"); -1 if unreadable.
  long sessions_now() {
    std::smatch m;
    const std::string out = vgpuctl_status();
    if (!std::regex_search(out, m, std::regex("calls processed, (\\d+) session\\(s\\) now"))) return -1;
    return std::stol(m[1]);
  }

  int metrics_port() {
    std::smatch m;
    const std::string log = vgpu_it::read_file(log_);
    if (!std::regex_search(log, m, std::regex("Prometheus endpoint on http://127\\.0\\.0\\.1:(\\d+)/metrics"))) return -1;
    return std::stoi(m[1]);
  }

  // vgpu_executor_memory_used_bytes from the metrics endpoint; -1 if unreadable.
  double executor_bytes() {
    const int port = metrics_port();
    if (port <= 0) return -1;
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    std::string reply;
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
      const std::string req = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
      if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
        char buf[65536];
        ssize_t n;
        while ((n = recv(fd, buf, sizeof buf, 0)) > 0) reply.append(buf, static_cast<size_t>(n));
      }
    }
    close(fd);
    std::smatch m;
    if (!std::regex_search(reply, m, std::regex("\\nvgpu_executor_memory_used_bytes(\\{[^}]*\\})? ([0-9.e+]+)"))) return -1;
    return std::stod(m[2]);
  }

  // VmRSS of the mediator, in KiB (from /proc/<pid>/status); -1 if unreadable.
  long mediator_rss_kib() {
    std::smatch m;
    const std::string st = vgpu_it::read_file("/proc/" + std::to_string(pid_) + "/status");
    if (!std::regex_search(st, m, std::regex("VmRSS:\\s+(\\d+) kB"))) return -1;
    return std::stol(m[1]);
  }

  // Polls until no session is left (a hang guard, not a timing assertion).
  long wait_sessions_gone(int timeout_s = 120) {
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(timeout_s);
    long n = -1;
    while (std::chrono::steady_clock::now() < deadline) {
      n = sessions_now();
      if (n == 0) return 0;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    return n;
  }
};

// Suite names as the ctest names read: integration.isolation.*, integration.cycles.*
using isolation = IsolationFixture;

TEST_F(isolation, EveryHandleKindForgedByAnotherSessionIsRefused) {
  const std::string release = dir_ + "/release";
  vgpu_it::guest owner = start("owner", kRawClient, {"hold-all", release});
  ASSERT_TRUE(wait_for_output(owner, "HOLDING"));
  std::smatch m;
  const std::string out = vgpu_it::read_file(owner.log);
  ASSERT_TRUE(std::regex_search(out, m, std::regex("IDS((?: [0-9a-f]+){11})"))) << out;
  std::printf("owner (pid %d) holds: ptr stream event blas lt graph exec vmm va module func =%s\n", owner.pid,
              m[1].str().c_str());
  std::vector<std::string> args{"forge"};
  std::istringstream ids(m[1].str());
  for (std::string id; ids >> id;) {
    EXPECT_NE(id, "0") << "the owner could not create every handle kind:\n" << out;
    args.push_back(id);
  }
  vgpu_it::guest forger = start("forger", kRawClient, args);
  const pid_t forger_pid = forger.pid;
  EXPECT_TRUE(finish(forger));
  std::printf("---- forger ----\n%s", vgpu_it::read_file(dir_ + "/forger.log").c_str());
  std::ofstream(release).put('\n');
  EXPECT_TRUE(finish(owner));
  std::printf("---- owner ----\n%s", vgpu_it::read_file(owner.log).c_str());
  // The mediator names the forger's VM in what it logs about it.
  const std::string vm = "local-" + std::to_string(forger_pid);
  const std::string log = vgpu_it::read_file(log_);
  EXPECT_TRUE(has(log, "vm_id=" + vm)) << "the mediator log never names " << vm;
  std::printf("---- mediator lines naming %s ----\n", vm.c_str());
  std::istringstream lines(log);
  for (std::string l; std::getline(lines, l);)
    if (has(l, vm)) std::printf("%s\n", l.c_str());
}

class CyclesFixture : public IsolationFixture {
 protected:
  // Runs `n` guests, `parallel` at a time; each is SIGKILLed at a random point
  // (before it connects, while it allocates, or once it printed READY) or left to
  // exit without freeing. Returns how many ran.
  int run_cycles(int n, int parallel, std::mt19937& rng) {
    struct running {
      pid_t pid;
      std::string log;
      int mode;  // 0: kill after a random delay, 1: kill after READY, 2: let it exit
      std::chrono::steady_clock::time_point kill_at;
    };
    std::vector<running> live;
    int started = 0, done = 0;
    std::uniform_int_distribution<int> mode(0, 2), delay_ms(0, 40);
    while (done < n) {
      while (started < n && static_cast<int>(live.size()) < parallel) {
        running r;
        r.log = dir_ + "/cycle-" + std::to_string(started % (parallel * 2)) + ".log";
        r.pid = vgpu_it::start_process({kRawClient, "cycle"}, guest_env(), r.log);
        if (r.pid <= 0) {
          ADD_FAILURE() << "could not start cycle guest " << started;
          return done;
        }
        r.mode = mode(rng);
        r.kill_at = std::chrono::steady_clock::now() + std::chrono::milliseconds(delay_ms(rng));
        live.push_back(r);
        ++started;
      }
      for (size_t i = 0; i < live.size();) {
        running& r = live[i];
        int status = 0;
        bool ended = waitpid(r.pid, &status, WNOHANG) == r.pid;
        if (!ended) {
          const bool kill_now = (r.mode == 0 && std::chrono::steady_clock::now() >= r.kill_at) ||
                                (r.mode == 1 && has(vgpu_it::read_file(r.log), "READY"));
          if (kill_now) {
            kill(r.pid, SIGKILL);
            waitpid(r.pid, &status, 0);
            ended = true;
          }
        } else if (r.mode == 2) {
          EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0)
              << "cycle guest: " << vgpu_it::describe_status(status) << "\n" << vgpu_it::read_file(r.log);
        }
        if (ended) {
          ++done;
          live.erase(live.begin() + static_cast<long>(i));
        } else {
          ++i;
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
    return done;
  }
};

using cycles = CyclesFixture;

TEST_F(cycles, FiveHundredConnectKillCyclesLeaveNoLeak) {
  std::mt19937 rng(20261125);
  constexpr int kParallel = 4;
  // Warm-up: the allocator's arenas, the workers' per-session structures and
  // the first lazily created objects reach their steady size here.
  ASSERT_EQ(run_cycles(40, kParallel, rng), 40);
  ASSERT_EQ(wait_sessions_gone(), 0) << "sessions left after the warm-up:\n" << vgpuctl_status();
  const long rss0 = mediator_rss_kib();
  const double bytes0 = executor_bytes();
  ASSERT_GT(rss0, 0);
  ASSERT_GE(bytes0, 0) << "vgpu_executor_memory_used_bytes not readable";

  const char* env_n = std::getenv("VGPU_CYCLES");
  const int total = env_n && *env_n ? std::atoi(env_n) : 500;
  int ran = 0;
  while (ran < total) {
    const int step = std::min(100, total - ran);
    const int r = run_cycles(step, kParallel, rng);
    ran += r;
    if (r != step) break;
    std::printf("after %d cycles: mediator RSS %ld KiB, executor bytes %.0f\n", ran, mediator_rss_kib(), executor_bytes());
  }
  EXPECT_EQ(ran, total);
  const long sessions = wait_sessions_gone();
  const long rss1 = mediator_rss_kib();
  const double bytes1 = executor_bytes();
  std::printf("cycles survived: %d; sessions now: %ld; mediator RSS %ld KiB -> %ld KiB (%+ld KiB); "
              "executor bytes in use %.0f -> %.0f\n",
              ran, sessions, rss0, rss1, rss1 - rss0, bytes0, bytes1);
  std::printf("---- vgpuctl status ----\n%s", vgpuctl_status().c_str());
  EXPECT_EQ(sessions, 0) << "sessions stuck after the cycles";
  EXPECT_EQ(bytes1, bytes0) << "the executor still holds device memory of dead guests";
  // Tolerance: each cycle holds 3 MiB of executor memory (1 MiB cudaMalloc,
  // 2 MiB cuMemCreate; on the reference executor that is mediator heap) and maps
  // a 64 MiB shared region, so a leak of either in a single cycle exceeds it. The
  // per-process bookkeeping this test caught (~78 KiB per ended guest, +38 MiB
  // over 500 cycles) is far above it too: 8 MiB / 500 catches any per-cycle leak
  // of 16 KiB or more. What stays is glibc's arenas and the threads' caches,
  // which keep freed memory mapped: measured +0.9 MiB after 500 cycles, flat
  // from cycle 100 on (the "after N cycles" lines).
  constexpr long kToleranceKib = 8 * 1024;
  EXPECT_LE(rss1 - rss0, kToleranceKib) << "the mediator's RSS grew over 500 cycles";
  EXPECT_TRUE(mediator_alive());
}

}  // namespace
