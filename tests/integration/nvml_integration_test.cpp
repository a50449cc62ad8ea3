// NVML integration tests: the real mediator (reference executor; VGPU_TEST_EXECUTOR=cuda
// on a GPU machine), vgpu's libnvidia-ml.so.1 in vgpu-nvml-test (every NVML answer
// against the runtime's through the same mediator) and in vgpu-smi.
#include "mediator_fixture.h"

#include <string>
#include <utility>
#include <vector>

namespace {

using namespace vgpu_it;

constexpr const char* kNvmlTest = VGPU_NVML_TEST_PATH;
constexpr const char* kSmi = VGPU_SMI_PATH;
// The reference executor's device name (actors/executor/reference/reference_device.h).
constexpr const char* kReferenceName = "vgpu reference executor (CPU, not a GPU)";

class NvmlTest : public MediatorFixture {
 protected:
  std::vector<std::pair<std::string, std::string>> required_programs() const override {
    return {{kNvmlTest, "NVML test program not built: "},
            {kSmi, "vgpu-smi not built: "},
            {std::string(kShimDir) + "/libnvidia-ml.so.1", "vgpu's libnvidia-ml.so.1 not built: "}};
  }
  static bool reference() { return test_executor() == "reference"; }

  // Runs vgpu-smi with `args`; its output, or "" after recording a failure.
  std::string run_smi(const std::string& name, const std::vector<std::string>& args) {
    guest g = start(name, kSmi, args);
    int status = 0;
    if (g.pid <= 0) {
      ADD_FAILURE() << "vgpu-smi could not be started:\n" << read_file(g.log);
      return {};
    }
    const bool exited = wait_process(g.pid, kGuestTimeoutS, &status);
    for (guest& r : running_)
      if (r.pid == g.pid) r.pid = -1;
    const std::string out = read_file(g.log);
    if (!exited || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      ADD_FAILURE() << "vgpu-smi " << (exited ? describe_status(status) : "hung") << ":\n" << tail(out);
      return {};
    }
    return out;
  }
};

TEST_F(NvmlTest, AnswersMatchTheRuntime) {
  std::vector<std::string> args{"--expect-vgpu"};
  if (reference()) args.push_back("--reference");
  guest g = start("nvml", kNvmlTest, args);
  finish(g);
}

TEST_F(NvmlTest, SmiShowsTheDevice) {
  const std::string out = run_smi("smi", {});
  if (out.empty()) return;
  std::printf("%s", out.c_str());
  EXPECT_NE(out.find("Driver Version: "), std::string::npos) << out;
  EXPECT_NE(out.find("Memory-Usage      : "), std::string::npos) << out;
  EXPECT_EQ(out.find("Memory-Usage      : N/A"), std::string::npos) << "memory must be known:\n" << out;
  EXPECT_EQ(out.find("Bus-Id            : N/A"), std::string::npos) << "bus id must be known:\n" << out;
  if (reference()) {
    EXPECT_NE(out.find(std::string("GPU 0: ") + kReferenceName), std::string::npos) << out;
    EXPECT_NE(out.find("Driver Version: vgpu-reference"), std::string::npos) << out;
    EXPECT_NE(out.find("GPU-Util          : 0%"), std::string::npos) << out;
  } else {
    EXPECT_NE(out.find("GPU 0: "), std::string::npos) << out;
    EXPECT_EQ(out.find("GPU 0: N/A"), std::string::npos) << out;
  }
}

TEST_F(NvmlTest, SmiListAndHelp) {
  const std::string list = run_smi("smi-list", {"-L"});
  EXPECT_NE(list.find("GPU 0: "), std::string::npos) << list;
  EXPECT_NE(list.find("(UUID: GPU-"), std::string::npos) << list;
  const std::string help = run_smi("smi-help", {"--help"});
  EXPECT_NE(help.find("usage:"), std::string::npos) << help;
}

}  // namespace
