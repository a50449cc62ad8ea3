// Which GPUs a tenant may use: the real mediator with the reference executor
// posing as 2 devices, local processes limited by --mediator.local-gpus, and
// bad ordinals (local-gpus, [vm.<id>] gpus) refused at startup with exit 2.
// ctest names integration.gpus.*.
#include "mediator_fixture.h"

#include <signal.h>
#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace {

using namespace vgpu_it;

constexpr const char* kGuestTest = VGPU_GUEST_TEST_PATH;

class GpusTest : public MediatorFixture {
 protected:
  std::vector<std::pair<std::string, std::string>> required_programs() const override {
    return {{kGuestTest, "guest test program not built: "}};
  }
  std::vector<std::string> extra_mediator_args() const override {
    return {"--mediator.reference-devices=2", "--mediator.local-gpus=[1]"};
  }
};

// Both GPUs' workers are idle, so least-loaded alone would pick gpu0/w0: the
// session must land on gpu1's worker.
TEST_F(GpusTest, LocalProcessLimitedToGpu1LandsOnAGpu1Worker) {
  if (test_executor() != "reference") GTEST_SKIP() << "needs the reference executor posing as 2 devices";
  guest g = start("guest", kGuestTest, {"--expect-vgpu", "integrity"});
  const pid_t pid = g.pid;
  EXPECT_TRUE(finish(g));
  const std::string log = read_file(log_);
  EXPECT_NE(log.find("local processes: GPUs 1 only"), std::string::npos) << tail(log);
  const std::string placed = "vm_id=local-" + std::to_string(pid) + ": session ";
  const size_t at = log.find(placed);
  ASSERT_NE(at, std::string::npos) << tail(log);
  const std::string line = log.substr(at, log.find('\n', at) - at);
  std::printf("%s\n", line.c_str());
  EXPECT_NE(line.find("placed on worker gpu1/"), std::string::npos) << line;
}

// Runs the mediator with `args` and returns its exit status (-1: it kept running).
int start_and_exit(const std::vector<std::string>& args, std::string* log) {
  char tmpl[] = "/tmp/vgpu-gpus-XXXXXX";
  if (!mkdtemp(tmpl)) return -1;
  const std::string dir = tmpl;
  std::vector<std::string> argv{kMediator, "--mediator.socket-path=" + dir + "/m.sock", "--mediator.executor=reference",
                                "--mediator.reference-devices=2", "--mediator.metrics-listen=\"\"",
                                "--mediator.control-socket=off"};
  for (auto a : args) argv.push_back(a.find("DIR") == 0 ? dir + a.substr(3) : a);
  if (args.size() == 1 && args[0] == "VMCONF") {
    argv.pop_back();
    const std::string conf = dir + "/vm.conf";
    std::ofstream(conf) << "[vm.x]\nsocket=\"" << dir << "/vmx.sock\"\nregion-size=16777216\nchannels=2\ngpus=[0, 5]\n";
    argv.push_back("--config-file=" + conf);
  }
  int status = 0;
  const pid_t pid = start_process(argv, {}, dir + "/mediator.log");
  if (pid <= 0) return -1;
  const bool exited = wait_process(pid, 30, &status);
  *log = read_file(dir + "/mediator.log");
  std::printf("%s", log->c_str());
  if (!exited) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
    return -1;
  }
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

TEST(GpusConfig, AnOrdinalTheExecutorLacksIsRefusedAtStartup) {
  std::string log;
  EXPECT_EQ(start_and_exit({"--mediator.local-gpus=[2]"}, &log), 2);
  EXPECT_NE(log.find("mediator.local-gpus names GPU 2, but the executor has 2 device(s)"), std::string::npos) << log;
  EXPECT_EQ(start_and_exit({"VMCONF"}, &log), 2);
  EXPECT_NE(log.find("vm.x.gpus names GPU 5, but the executor has 2 device(s)"), std::string::npos) << log;
}

}  // namespace
