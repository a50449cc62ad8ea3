// The cuBLAS guest program (tests/guest/cublas_test.cpp) against the real
// mediator (reference executor; VGPU_TEST_EXECUTOR=cuda on a GPU machine), on
// vgpu's libcublas.so.13 over the local transport.
#include "mediator_fixture.h"

#include <string>
#include <utility>
#include <vector>

namespace {

using namespace vgpu_it;

constexpr const char* kCublasGuest = VGPU_CUBLAS_TEST_PATH;

class CublasTest : public MediatorFixture {
 protected:
  std::vector<std::pair<std::string, std::string>> required_programs() const override {
    return {{kCublasGuest, "cuBLAS guest program not built: "},
            {std::string(kShimDir) + "/libcublas.so.13", "vgpu's libcublas.so.13 not built: "}};
  }
};

// Every check of the program: handles and their state, the GEMM family
// (transposes, lda > m, alpha/beta, device pointer mode, fp16 GemmEx, strided
// and pointer-array batches), level 1 and 2, trsm, batched LU, the copy
// helpers, and the error cases (outside pointers, destroyed handle, NOT_SUPPORTED).
TEST_F(CublasTest, Checks) {
  guest g = start("cublas", kCublasGuest, {"--expect-vgpu", "checks"});
  finish(g);
}

// Two programs with cuBLAS handles at once: sessions stay apart.
TEST_F(CublasTest, TwoGuestsAtOnce) {
  guest a = start("cublas-a", kCublasGuest, {"--expect-vgpu", "checks"});
  guest b = start("cublas-b", kCublasGuest, {"--expect-vgpu", "checks"});
  finish(a);
  finish(b);
}

}  // namespace
