// Per-VM memory limits: the real mediator (reference executor;
// VGPU_TEST_EXECUTOR=cuda on a GPU machine) started with
// --mediator.local-memory-limit-mb, and vgpu-limits-test as its guests. Local
// processes share one budget (the local socket is one tenant, as a VM is), so
// two local processes stand for two processes of one VM. ctest names
// integration.limits.*.
#include "mediator_fixture.h"

#include <fstream>
#include <string>
#include <utility>
#include <vector>

namespace {

using namespace vgpu_it;

constexpr const char* kLimitsTest = VGPU_LIMITS_TEST_PATH;
constexpr int kLimitMb = 256;

class LimitsTest : public MediatorFixture {
 protected:
  std::vector<std::pair<std::string, std::string>> required_programs() const override {
    return {{kLimitsTest, "vgpu-limits-test not built: "},
            {std::string(kShimDir) + "/libnvidia-ml.so.1", "vgpu's libnvidia-ml.so.1 not built: "},
            {std::string(kShimDir) + "/libcuda.so.1", "vgpu's libcuda.so.1 not built: "}};
  }
  std::vector<std::string> extra_mediator_args() const override {
    return {"--mediator.local-memory-limit-mb=" + std::to_string(kLimitMb)};
  }
  static size_t count(const std::string& text, const std::string& what) {
    size_t n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
  }
};

// cudaMalloc, cuMemAlloc, cuMemCreate, cudaMallocAsync and cuMemAllocAsync stop
// at the limit with the right error, work again after a free, and
// cudaMemGetInfo, cuMemGetInfo and NVML report the same total and free.
TEST_F(LimitsTest, EveryAllocationKindStopsAtTheLimit) {
  guest g = start("limits", kLimitsTest, {"--limit-mb", std::to_string(kLimitMb)});
  finish(g);
  std::printf("%s", read_file(g.log).c_str());
  const std::string log = read_file(log_);
  EXPECT_NE(log.find("local processes: memory limit 256 MiB"), std::string::npos) << tail(log);
  // Refused many times, logged once at warn (with the VM and the limit).
  EXPECT_EQ(count(log, "vm_id=local: memory limit of 256 MiB reached"), 1u) << tail(log);
}

// Two processes of one tenant share its budget; the holder exits without
// freeing, and a third process then finds the whole limit free again.
TEST_F(LimitsTest, ProcessesShareOneBudgetAndAnExitGivesItBack) {
  const std::string release = dir_ + "/release";
  guest holder = start("holder", kLimitsTest,
                       {"--limit-mb", std::to_string(kLimitMb), "--hold-mb", "192", "--release-file", release});
  if (!wait_for_output(holder, "HOLDING")) return;
  guest other = start("other", kLimitsTest, {"--limit-mb", std::to_string(kLimitMb), "--others-mb", "192"});
  finish(other);
  std::ofstream(release).put('\n');
  finish(holder);
  guest after = start("after", kLimitsTest, {"--limit-mb", std::to_string(kLimitMb), "--wait-free"});
  finish(after);
  for (const guest* g : {&holder, &other, &after})
    std::printf("---- %s ----\n%s", g->name.c_str(), read_file(g->log).c_str());
}

// The keys are listed by --help; a bad VM limit stops the mediator at start.
TEST(LimitsConfig, HelpListsTheKeysAndBadValuesAreRefused) {
  char tmpl[] = "/tmp/vgpu-limits-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  int status = 0;
  const pid_t help = start_process({kMediator, "--help"}, {}, dir + "/help.log");
  ASSERT_GT(help, 0);
  ASSERT_TRUE(wait_process(help, 30, &status));
  const std::string out = read_file(dir + "/help.log");
  EXPECT_NE(out.find("local-memory-limit-mb"), std::string::npos) << out;
  EXPECT_NE(out.find("vm.<id>.memory-limit-mb"), std::string::npos) << out;

  std::ofstream(dir + "/bad.conf") << "[vm.7]\nsocket=\"" << dir << "/vm7.sock\"\nmemory-limit-mb=-5\n";
  const pid_t bad = start_process({kMediator, "--config-file=" + dir + "/bad.conf", "--mediator.socket-path=" + dir + "/l.sock",
                                   "--mediator.executor=reference"},
                                  {}, dir + "/bad.log");
  ASSERT_GT(bad, 0);
  ASSERT_TRUE(wait_process(bad, 30, &status));
  const std::string log = read_file(dir + "/bad.log");
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 2) << describe_status(status) << "\n" << log;
  EXPECT_NE(log.find("vm.7.memory-limit-mb must be"), std::string::npos) << log;
  if (!HasFailure()) {
    EXPECT_EQ(std::system(("rm -rf '" + dir + "'").c_str()), 0);
  }
}

}  // namespace
