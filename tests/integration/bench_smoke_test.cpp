// CI smoke test of vgpu-bench (tools/bench/vgpu_bench.cu): the real mediator
// (reference executor; VGPU_TEST_EXECUTOR=cuda on a GPU machine) and
// `vgpu-bench --quick` through vgpu's shim over the local transport.
//
// It checks only that the benchmark runs to the end through vgpu — exit code 0,
// every figure printed with a value, its --procs children connected as
// sessions of their own — never how fast: timings on a shared CI machine, and
// on the CPU reference executor, mean nothing.
#include "mediator_fixture.h"

#include <sys/wait.h>

#include <regex>
#include <string>
#include <vector>

namespace {

using namespace vgpu_it;

constexpr const char* kBench = VGPU_BENCH_PATH;

class BenchSmoke : public MediatorFixture {
 protected:
  std::vector<std::pair<std::string, std::string>> required_programs() const override {
    return {{kBench, "vgpu-bench not built: "}};
  }
};

size_t count(const std::string& s, const std::string& what) {
  size_t n = 0;
  for (size_t p = s.find(what); p != std::string::npos; p = s.find(what, p + what.size())) ++n;
  return n;
}

TEST_F(BenchSmoke, QuickRunsThroughVgpu) {
  guest g = start("vgpu-bench", kBench, {"--quick", "--procs", "4"});
  ASSERT_GT(g.pid, 0) << read_file(g.log);
  int status = 0;
  const bool exited = wait_process(g.pid, kGuestTimeoutS, &status);
  for (guest& r : running_)
    if (r.pid == g.pid) r.pid = -1;
  const std::string out = read_file(g.log);
  ASSERT_TRUE(exited) << "vgpu-bench --quick hung: killed after " << kGuestTimeoutS << " s:\n" << tail(out);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << describe_status(status) << ":\n" << tail(out);
  EXPECT_NE(out.find("vgpu-bench: vgpu ("), std::string::npos) << "it did not load vgpu's runtime:\n" << tail(out);
  EXPECT_NE(out.find("SGEMM 256^3 instead of 4096^3"), std::string::npos) << "--quick did not say so:\n" << tail(out);

  // Every figure of a --quick run, each with a number (not FAILED).
  const std::vector<std::string> figures{
      "memgetinfo",       "stream_sync_idle", "launch_rate",     "launch_sync",           "malloc_free_1m",
      "h2d_4k_pageable",  "d2h_4k_pageable",  "h2d_1m_pageable", "d2h_1m_pageable",       "h2d_1m_pinned",
      "d2h_1m_pinned",    "h2d_64m_pageable", "d2h_64m_pageable", "h2d_64m_pinned",       "d2h_64m_pinned",
      "sgemm_256",        "sgemm_64_rate",    "procs4_h2d_64m_pinned", "procs4_launch_rate"};
  for (const std::string& f : figures) {
    const std::regex line("(^|\n)figure " + f + " [0-9][0-9.]* [^ \n]+\n");
    EXPECT_TRUE(std::regex_search(out, line)) << "no measured 'figure " << f << "' line:\n" << tail(out);
  }
  EXPECT_EQ(out.find(" FAILED "), std::string::npos) << tail(out);
  EXPECT_NE(out.find("vgpu-bench: " + std::to_string(figures.size()) + " figures, 0 failed"), std::string::npos)
      << tail(out);

  // The parent and its 4 children: one session each.
  stop_mediator();
  const std::string log = read_file(log_);
  EXPECT_GE(count(log, "[CONNECTION] local process connected"), 5u) << tail(log, 20000);
}

}  // namespace
