// Kernel integration tests: the real mediator (reference executor; VGPU_TEST_EXECUTOR=cuda
// on a GPU machine) and vgpu-kernel-test, an nvcc-built program with kernels, running
// through vgpu's shim over the local transport.
//
// With the reference executor kernels are recorded, not run: the guest gets
// --reference and checks launch records (marshalling byte for byte), ordering and
// error reporting instead of kernel results. With the cuda executor it checks results.
#include "mediator_fixture.h"

#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {

using namespace vgpu_it;

constexpr const char* kKernelTest = VGPU_KERNEL_TEST_PATH;
constexpr const char* kGuestTest = VGPU_GUEST_TEST_PATH;
constexpr const char* kKernelTestCubin = VGPU_KERNEL_TEST_CUBIN_PATH;

// What the fatbins embedded in a program file hold, read from the file's
// bytes (fatbin layout: actors/executor/fatbin/fatbin.h).
struct fatbin_census {
  int fatbins = 0, ptx = 0, cubins = 0, lz4_cubins = 0;
};

template <typename T>
T at(const std::string& f, size_t pos) {
  T v{};
  std::memcpy(&v, f.data() + pos, sizeof v);
  return v;
}

fatbin_census census_of(const std::string& path) {
  const std::string f = read_file(path);
  const std::string magic("\x50\xed\x55\xba", 4);
  fatbin_census c;
  for (size_t p = f.find(magic); p != std::string::npos && p + 16 <= f.size(); p = f.find(magic, p + 4)) {
    const uint64_t size = at<uint64_t>(f, p + 8);
    if (at<uint16_t>(f, p + 4) != 1 || at<uint16_t>(f, p + 6) != 16 || size > f.size() - p - 16) continue;
    ++c.fatbins;
    for (size_t e = p + 16; e + 64 <= p + 16 + size;) {
      const uint32_t header = at<uint32_t>(f, e + 4);
      if (header < 64) break;
      const uint16_t kind = at<uint16_t>(f, e);
      c.ptx += kind == 1;
      c.cubins += kind == 2;
      c.lz4_cubins += kind == 2 && (at<uint64_t>(f, e + 0x28) & 0x2000) != 0;
      e += header + at<uint64_t>(f, e + 8);
    }
  }
  return c;
}

class KernelTest : public MediatorFixture {
 protected:
  std::vector<std::pair<std::string, std::string>> required_programs() const override {
    return {{kKernelTest, "kernel test program not built: "}, {kGuestTest, "guest program not built: "}};
  }

  static bool reference() { return test_executor() == "reference"; }

  // vgpu-kernel-test's arguments for this executor: --expect-vgpu always,
  // --reference when kernels are only recorded.
  static std::vector<std::string> kernel_args(const std::string& subcommand, std::vector<std::string> more = {}) {
    std::vector<std::string> a{subcommand, "--expect-vgpu"};
    if (reference()) a.push_back("--reference");
    a.insert(a.end(), more.begin(), more.end());
    return a;
  }

  bool run_kernel_test(const std::string& name, const std::string& subcommand, std::vector<std::string> more = {}) {
    guest g = start(name, kKernelTest, kernel_args(subcommand, std::move(more)));
    return finish(g);
  }

  // Free device memory as a fresh guest sees it (cudaMemGetInfo); 0 on failure.
  uint64_t free_memory(const std::string& name) {
    guest g = start(name, kGuestTest, {"meminfo", "--expect-vgpu"});
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

// Parameter blocks of many shapes (struct by value with padding, 4 KiB struct,
// no parameters, scalars of every size, templates), <<<>>>, cudaLaunchKernel,
// cudaLaunchKernelExC / cudaLaunchKernelEx with clusters, cooperative launches,
// several streams, dynamic shared memory: every launch record byte for byte.
TEST_F(KernelTest, Marshal) {
  if (!reference()) GTEST_SKIP() << "launch records exist only with the reference executor";
  run_kernel_test("marshal", "marshal");
}

// The same program with cubin-only device code (sm_90 SASS, no PTX,
// LZ4-compressed), as release libraries ship kernels (PyTorch's): the
// reference executor reads kernels, layouts and variables from the cubin,
// and every launch record still matches the CUDA ABI's packing byte for byte.
TEST_F(KernelTest, CubinOnlyProgram) {
  if (!reference()) GTEST_SKIP() << "its SASS is for sm_90 only; launch records are the reference's";
  const fatbin_census c = census_of(kKernelTestCubin);
  ASSERT_GE(c.fatbins, 1) << kKernelTestCubin << " embeds no fatbin";
  EXPECT_EQ(c.ptx, 0) << kKernelTestCubin << " carries PTX: the test would not exercise cubins";
  EXPECT_GE(c.lz4_cubins, 1) << c.cubins << " cubin(s), none LZ4-compressed";
  guest g = start("cubin-only", kKernelTestCubin, kernel_args("all"));
  finish(g);
}

// Kernels of a library loaded with dlopen() after main() started.
// What ggml-cuda (llama.cpp, Ollama) does: a VMM pool grown chunk by chunk,
// model loads on cudaStreamPerThread, fp16 cuBLAS GEMMs, and a captured token
// step replayed with the KV-cache pointer rewritten in the kernel node.
TEST_F(KernelTest, GgmlPattern) {
  std::vector<std::string> args{"--expect-vgpu", "--steps", "16"};
  if (reference()) args.push_back("--reference");
  guest g = start("ggml-pattern", VGPU_GGML_PATTERN_PATH, args);
  EXPECT_TRUE(finish(g));
}

TEST_F(KernelTest, Dlopen) { run_kernel_test("dlopen", "dlopen"); }

// 4 host threads x 200 launches on their own streams.
TEST_F(KernelTest, Threads) { run_kernel_test("threads", "threads"); }

// Host functions and stream callbacks interleaved with work on 2 streams: in
// order, after the work before them.
TEST_F(KernelTest, HostFunc) { run_kernel_test("hostfunc", "hostfunc"); }

// Asynchronous launch errors surface at the next synchronising call, once;
// configuration errors at once; normal work goes on afterwards.
TEST_F(KernelTest, Deferred) {
  run_kernel_test("deferred", "deferred");
  // The errors did not spoil the mediator for the next guest.
  run_kernel_test("dlopen-after-deferred", "dlopen");
}

// Several kernel guests at once, each with its own session and records.
TEST_F(KernelTest, FourGuestsAtOnce) {
  std::vector<guest> gs;
  for (int i = 0; i < 4; ++i) {
    const std::string sub = reference() ? "marshal" : "compute";
    gs.push_back(start(sub + "-" + std::to_string(i), kKernelTest, kernel_args(sub, {"--seed", std::to_string(i + 1)})));
  }
  for (guest& g : gs) finish(g);
  ASSERT_TRUE(mediator_alive());
}

// A guest killed while thousands of launches are queued (in its ring and on its
// streams): the mediator survives, serves a guest that runs beside it and the
// next ones, and gives the killed session's memory back.
TEST_F(KernelTest, GuestKilledWithKernelsQueued) {
  constexpr uint64_t kHoldMiB = 256;
  const uint64_t before = free_memory("meminfo-before");
  ASSERT_GT(before, kHoldMiB << 20);
  guest victim = start("flood", kKernelTest,
                       kernel_args("flood", {"--count", "2000000", "--mib", std::to_string(kHoldMiB)}));
  ASSERT_TRUE(wait_for_output(victim, "QUEUED"));
  guest bystander = start("threads-beside-flood", kKernelTest, kernel_args("threads"));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  kill(victim.pid, SIGKILL);
  int status = 0;
  waitpid(victim.pid, &status, 0);
  for (guest& r : running_)
    if (r.pid == victim.pid) r.pid = -1;
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL)
      << "the flooding guest ended before it was killed (" << describe_status(status) << "):\n"
      << tail(read_file(victim.log));
  finish(bystander);
  ASSERT_TRUE(mediator_alive()) << "the mediator did not survive a guest killed with kernels queued";
  run_kernel_test("hostfunc-after-kill", "hostfunc");
  if (reference()) run_kernel_test("marshal-after-kill", "marshal");
  else run_kernel_test("compute-after-kill", "compute");
  uint64_t after = 0;
  for (int i = 0; i < 100 && (after = free_memory("meminfo-after-" + std::to_string(i))) < before; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_GE(after, before) << "memory of a guest killed with kernels queued was not given back";
  ASSERT_TRUE(mediator_alive());
}

// Fair service: a guest that keeps the worker's queue full of launches must
// not starve another guest's synchronous calls. Progress, never timing: the
// quiet guest (every `device` check: dozens of round trips and a 64 MiB
// malloc) must finish while the flooder is still queueing launches.
TEST_F(KernelTest, FloodingGuestDoesNotStarveAnother) {
  guest flooder = start("flooder", kKernelTest, kernel_args("flood", {"--count", "50000000", "--mib", "16"}));
  ASSERT_TRUE(wait_for_output(flooder, "QUEUED"));
  const auto t0 = std::chrono::steady_clock::now();
  guest quiet = start("quiet-beside-flood", kGuestTest, {"device", "--expect-vgpu"});
  EXPECT_TRUE(finish(quiet)) << "the quiet guest failed beside a flooding one";
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  int status = 0;
  const bool flooder_running = waitpid(flooder.pid, &status, WNOHANG) == 0;
  std::printf("quiet guest beside a flooder: all device checks in %.2f s; flooder still queueing: %s\n", seconds,
              flooder_running ? "yes" : "no");
  EXPECT_TRUE(flooder_running) << "the flooder ended before the quiet guest finished: the test proved nothing";
  if (flooder_running) {
    kill(flooder.pid, SIGKILL);
    waitpid(flooder.pid, &status, 0);
  }
  for (guest& r : running_)
    if (r.pid == flooder.pid) r.pid = -1;
  ASSERT_TRUE(mediator_alive());
}

}  // namespace
