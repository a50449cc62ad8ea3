// Operations against the real mediator (reference executor): `vgpuctl status`
// shows a connected guest's session and calls, `vgpuctl doctor` names the hop
// that failed (healthy setup, a VM nobody connected, the mediator down),
// `vgpuctl trace` lists a guest's calls, and the Prometheus endpoint serves
// vgpu_calls_total after a guest ran. No timing is asserted.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <fstream>
#include <regex>

#include "mediator_fixture.h"

namespace {

constexpr const char* kGuestTest = VGPU_GUEST_TEST_PATH;
constexpr const char* kVgpuctl = VGPU_VGPUCTL_PATH;

class OpsTest : public vgpu_it::MediatorFixture {
 protected:
  std::vector<std::pair<std::string, std::string>> required_programs() const override {
    return {{kGuestTest, "guest test program not built: "}, {kVgpuctl, "vgpuctl not built: "}};
  }

  std::string control() const { return dir_ + "/control.sock"; }

  // Runs vgpuctl with `args`; its exit status and what it printed (stdout and stderr).
  int vgpuctl(const std::vector<std::string>& args, std::string* out) {
    static int n = 0;
    const std::string log = dir_ + "/vgpuctl-" + std::to_string(++n) + ".out";
    std::vector<std::string> argv{kVgpuctl, "--socket", control()};
    argv.insert(argv.end(), args.begin(), args.end());
    const pid_t pid = vgpu_it::start_process(argv, {}, log);
    int status = 0;
    const bool exited = pid > 0 && vgpu_it::wait_process(pid, 60, &status);
    *out = vgpu_it::read_file(log);
    std::string cmd;
    for (const auto& a : args) cmd += " " + a;
    std::printf("---- vgpuctl%s ----\n%s", cmd.c_str(), out->c_str());
    if (!exited) return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  }

  // Runs one guest program to completion (it must pass); returns its vm id.
  std::string run_guest(const std::string& mode) {
    vgpu_it::guest g = start("guest-" + mode, kGuestTest, {"--expect-vgpu", mode});
    const pid_t pid = g.pid;
    EXPECT_TRUE(finish(g));
    return "local-" + std::to_string(pid);
  }
};

bool has(const std::string& text, const std::string& what) { return text.find(what) != std::string::npos; }

TEST_F(OpsTest, StatusShowsAConnectedGuestsSessionAndCalls) {
  const std::string release = dir_ + "/release";
  vgpu_it::guest g = start("hold", kGuestTest, {"--expect-vgpu", "--mib", "4", "--release-file", release, "hold"});
  ASSERT_TRUE(wait_for_output(g, "HOLDING"));
  const std::string vm = "local-" + std::to_string(g.pid);
  std::string out;
  EXPECT_EQ(vgpuctl({"status"}, &out), 0);
  // The session table: a row of this guest, with calls made.
  std::smatch m;
  const std::regex row("\\n(\\d+) +" + vm + " +" + std::to_string(g.pid) + " +gpu0/w0 +(\\d+) +(\\d+) ");
  ASSERT_TRUE(std::regex_search(out, m, row)) << "no session row for " << vm;
  EXPECT_GT(std::stoul(m[2]), 0u) << "the session shows no calls";
  EXPECT_EQ(std::stoul(m[3]), 0u) << "the session shows failed calls";
  // Calls by name, for this VM: the hold mode allocated once.
  const std::regex calls("  " + vm + ":.* cudaMalloc=1( |\\n)");
  EXPECT_TRUE(std::regex_search(out, calls)) << "no cudaMalloc=1 for " << vm;
  EXPECT_TRUE(has(out, "executor   reference")) << "the executor line is missing";
  EXPECT_TRUE(has(out, "4 MiB")) << "the session's 4 MiB of device memory is not shown";
  std::ofstream(release).put('\n');
  EXPECT_TRUE(finish(g));
}

TEST_F(OpsTest, DoctorOnAHealthySetupPassesEveryGuestHop) {
  const std::string vm = run_guest("integrity");
  std::string out;
  const int rc = vgpuctl({"doctor"}, &out);
  EXPECT_TRUE(has(out, "\u2713 mediator reachable"));
  EXPECT_TRUE(has(out, "\u2713 VM socket up"));
  EXPECT_TRUE(has(out, "\u2713 guest process connected"));
  EXPECT_TRUE(has(out, "\u2713 doorbells seen"));
  EXPECT_TRUE(has(out, "\u2713 calls received and processed"));
  EXPECT_TRUE(has(out, "\u2713 GPU memory moved"));
  if (vgpu_it::test_executor() == "reference") {
    // The CPU executor is not a GPU: the one hop that fails, with its fix.
    EXPECT_EQ(rc, 1);
    EXPECT_TRUE(has(out, "\u2717 executor on a real GPU"));
    EXPECT_TRUE(has(out, "fix: the mediator found no usable NVIDIA GPU"));
    EXPECT_TRUE(has(out, "doctor: 1 hop(s) failed; the first: executor on a real GPU"));
  } else {
    EXPECT_EQ(rc, 0);
    EXPECT_TRUE(has(out, "doctor: every hop \u2713"));
  }
  // Asked for the one guest, the same.
  EXPECT_NE(vgpuctl({"doctor", "--vm", vm}, &out), 2);
  EXPECT_TRUE(has(out, "vm " + vm));
  EXPECT_TRUE(has(out, "\u2713 calls received and processed"));
}

TEST_F(OpsTest, DoctorWithTheMediatorDownSaysSo) {
  stop_mediator();
  std::string out;
  EXPECT_EQ(vgpuctl({"doctor"}, &out), 1);
  EXPECT_TRUE(has(out, "\u2717 mediator reachable"));
  EXPECT_TRUE(has(out, "connect(" + control() + ")"));
  EXPECT_TRUE(has(out, "socket file missing"));
  EXPECT_TRUE(has(out, "fix: "));
  EXPECT_TRUE(has(out, "the first: mediator reachable"));
  EXPECT_EQ(vgpuctl({"status"}, &out), 1);
  EXPECT_TRUE(has(out, "cannot reach the vgpu mediator"));
}

TEST_F(OpsTest, TraceListsAGuestsLastCallsHopByHop) {
  const std::string vm = run_guest("integrity");
  std::string out;
  EXPECT_EQ(vgpuctl({"trace", "--vm", vm, "--last", "10"}, &out), 0);
  EXPECT_TRUE(has(out, "vm " + vm + ": last 10 call(s)"));
  EXPECT_TRUE(has(out, "EXEC"));
  EXPECT_TRUE(has(out, "cudaFree")) << "the guest's last calls free its memory";
  EXPECT_EQ(vgpuctl({"top", "--once"}, &out), 0);
  EXPECT_TRUE(has(out, vm));
}

TEST_F(OpsTest, EverySubcommandHasHelp) {
  for (const char* cmd : {"status", "top", "doctor", "trace"}) {
    std::string out;
    EXPECT_EQ(vgpuctl({cmd, "--help"}, &out), 0) << cmd;
    EXPECT_TRUE(has(out, std::string("usage: vgpuctl ") + cmd)) << cmd;
  }
}

// A mediator serving [vm.x] that no QEMU connects to.
class OpsVmTest : public OpsTest {
 protected:
  std::vector<std::string> extra_mediator_args() const override {
    const std::string conf = dir_ + "/vm.conf";
    std::ofstream(conf) << "[vm.x]\nsocket=\"" << dir_ << "/vmx.sock\"\nregion-size=16777216\nchannels=2\n";
    return {"--config-file=" + conf};
  }
};

TEST_F(OpsVmTest, DoctorNamesTheDeviceHopWhenNoVmConnected) {
  std::string out;
  EXPECT_EQ(vgpuctl({"doctor", "--vm", "x"}, &out), 1);
  EXPECT_TRUE(has(out, "\u2713 mediator reachable"));
  EXPECT_TRUE(has(out, "\u2713 VM socket up                  listening on " + dir_ + "/vmx.sock"));
  EXPECT_TRUE(has(out, "\u2717 device (QEMU) connected"));
  EXPECT_TRUE(has(out, "fix: start the VM with -chardev socket,path=" + dir_ + "/vmx.sock"));
  EXPECT_TRUE(has(out, "the first: device (QEMU) connected (vm x)"));
  // An id the mediator does not serve.
  EXPECT_EQ(vgpuctl({"doctor", "--vm", "nosuch"}, &out), 1);
  EXPECT_TRUE(has(out, "serves no VM 'nosuch'"));
  // status lists the configured VM with nobody connected.
  EXPECT_EQ(vgpuctl({"status"}, &out), 0);
  EXPECT_TRUE(std::regex_search(out, std::regex("\\nx +0/0 +0 ")));
}

// A mediator with its metrics on an ephemeral loopback port.
class OpsMetricsTest : public OpsTest {
 protected:
  std::vector<std::string> extra_mediator_args() const override { return {"--mediator.metrics-listen=127.0.0.1:0"}; }

  // GET http://127.0.0.1:port/metrics; the body, or "" on failure.
  static std::string scrape(int port) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return "";
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
    return reply;
  }
};

TEST_F(OpsMetricsTest, EndpointServesCallCountsAfterAGuestRan) {
  const std::string vm = run_guest("integrity");
  std::smatch m;
  const std::string log = vgpu_it::read_file(log_);
  ASSERT_TRUE(std::regex_search(log, m, std::regex("Prometheus endpoint on http://127\\.0\\.0\\.1:(\\d+)/metrics")))
      << "the mediator did not log its metrics address";
  const std::string body = scrape(std::stoi(m[1]));
  std::printf("---- /metrics (vgpu_ lines) ----\n");
  std::istringstream lines(body);
  for (std::string l; std::getline(lines, l);)
    if (l.rfind("vgpu_", 0) == 0) std::printf("%s\n", l.c_str());
  EXPECT_TRUE(has(body, "200 OK"));
  EXPECT_TRUE(std::regex_search(body, std::regex("vgpu_calls_total\\{vm=\"" + vm + "\",call=\"cudaMalloc\"\\} [1-9]")));
  EXPECT_TRUE(std::regex_search(body, std::regex("vgpu_processed_total [1-9]")));
  EXPECT_TRUE(has(body, "vgpu_call_duration_seconds_count{vm=\"" + vm + "\"}"));
  EXPECT_TRUE(has(body, "vgpu_executor_info{executor=\"" + vgpu_it::test_executor() + "\""));
  EXPECT_TRUE(has(body, "vgpu_sessions_total{vm=\"" + vm + "\"} 1"));
  // vgpuctl status names the same endpoint.
  std::string out;
  EXPECT_EQ(vgpuctl({"status"}, &out), 0);
  EXPECT_TRUE(has(out, "metrics    http://127.0.0.1:" + std::string(m[1]) + "/metrics"));
}

}  // namespace
