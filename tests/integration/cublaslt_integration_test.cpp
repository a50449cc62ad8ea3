// cuBLASLt through the real mediator: vgpu-cublaslt-test (an ordinary program
// built against NVIDIA's cuBLASLt) runs on vgpu's libcublasLt.so.13 and checks
// every matmul against its own loops. ctest names integration.cublaslt.*
#include "mediator_fixture.h"

#include <string>

namespace {

using namespace vgpu_it;

constexpr const char* kLtTest = VGPU_CUBLASLT_TEST_PATH;

class CublasLtTest : public MediatorFixture {
 protected:
  std::vector<std::pair<std::string, std::string>> required_programs() const override {
    return {{kLtTest, "cuBLASLt test program not built: "},
            {std::string(kShimDir) + "/libcublasLt.so.13", "vgpu's libcublasLt.so.13 not built: "},
            {std::string(kShimDir) + "/libcublas.so.13", "vgpu's libcublas.so.13 not built: "}};
  }
};

// Every check of the program (matmuls in f32/f16/bf16, transposes, row-major,
// strided batches, bias and activation epilogues, the heuristic, device
// pointer mode, errors and vgpu's refusals) must print PASS.
TEST_F(CublasLtTest, AllChecks) {
  guest g = start("cublaslt", kLtTest, {"--expect-vgpu"});
  ASSERT_TRUE(finish(g));
  const std::string out = read_file(g.log);
  EXPECT_EQ(out.find("FAIL "), std::string::npos) << tail(out);
  EXPECT_NE(out.find("ALL PASSED"), std::string::npos) << tail(out);
  EXPECT_NE(out.find("PASS f16 TN bias (addmm)"), std::string::npos) << tail(out);
  EXPECT_NE(out.find("PASS f32 bias on a cuBLAS handle"), std::string::npos) << tail(out);
}

// The mediator serves a fresh guest after one that misused cuBLASLt.
TEST_F(CublasLtTest, TwoGuestsInTurn) {
  guest a = start("cublaslt-1", kLtTest, {"--expect-vgpu"});
  ASSERT_TRUE(finish(a));
  guest b = start("cublaslt-2", kLtTest, {"--expect-vgpu"});
  ASSERT_TRUE(finish(b));
}

}  // namespace
