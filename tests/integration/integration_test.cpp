// Integration tests: the real mediator (reference executor; VGPU_TEST_EXECUTOR=cuda
// on a GPU machine) in one process, the real shim inside unchanged guest
// programs in others, over the local transport.
//
// Every test starts its own mediator on a socket in a fresh temporary folder,
// waits until the socket accepts connections, runs guest processes with
// LD_LIBRARY_PATH pointing at vgpu's shim, and checks their exit codes. A test
// fails when the mediator died on its own, and when it does not stop on SIGTERM.
#include "mediator_fixture.h"

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace vgpu_it;

constexpr const char* kGuest = VGPU_GUEST_TEST_PATH;
constexpr const char* kRawClient = VGPU_RAW_CLIENT_PATH;

class MediatorTest : public MediatorFixture {
 protected:
  std::vector<std::pair<std::string, std::string>> required_programs() const override {
    return {{kGuest, "guest program not built: "}};
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
};

TEST_F(MediatorTest, Device) { run_guest("device", {"device", "--expect-vgpu"}); }

// The driver API (our libcuda.so.1): Ollama's discovery sequence, memory and
// copies, entry points by name, errors; and driver and runtime sharing one session.
TEST_F(MediatorTest, DriverApi) {
  // --reference: kernels are recorded, not run; the program checks the records.
  std::vector<std::string> args{"--expect-vgpu"};
  if (test_executor() == "reference") args.push_back("--reference");
  guest g = start("driver", VGPU_DRIVER_TEST_PATH, args);
  finish(g);
}

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
