// Graph integration tests: the real mediator (reference executor; VGPU_TEST_EXECUTOR=cuda
// on a GPU machine) and vgpu-graph-test (tests/kernels/graph_test.cu) through vgpu's shim
// over the local transport. With the reference executor the guest checks launch records
// and replayed memsets/copies; with the cuda executor, kernel results.
#include "mediator_fixture.h"

#include <string>
#include <vector>

namespace {

using namespace vgpu_it;

constexpr const char* kGraphTest = VGPU_GRAPH_TEST_PATH;

class GraphTest : public MediatorFixture {
 protected:
  std::vector<std::pair<std::string, std::string>> required_programs() const override {
    return {{kGraphTest, "graph test program not built: "}};
  }
  bool run_graph_test(const std::string& subcommand) {
    std::vector<std::string> a{subcommand, "--expect-vgpu"};
    if (test_executor() == "reference") a.push_back("--reference");
    guest g = start(subcommand, kGraphTest, a);
    return finish(g);
  }
};

// Relaxed capture of memset + kernels + D2D copy + host function with a fork and join
// through events; capture queries; 10 launches of one instance.
TEST_F(GraphTest, Capture) { EXPECT_TRUE(run_graph_test("capture")); }

// llama.cpp's pattern: kernel node parameters read, compared, rewritten, applied to the
// exec; cudaGraphExecUpdate with a re-captured graph; a refused update.
TEST_F(GraphTest, KernelNodeParams) { EXPECT_TRUE(run_graph_test("params")); }

// Explicit graphs: every node kind vgpu carries, dependencies, clone.
TEST_F(GraphTest, Explicit) { EXPECT_TRUE(run_graph_test("explicit")); }

// Refusals and forged handles.
TEST_F(GraphTest, Errors) { EXPECT_TRUE(run_graph_test("errors")); }

// Every subcommand in one process, as the GPU check runs it: what one leaves
// behind (a deferred error of a refused call) must not reach the next.
TEST_F(GraphTest, All) { EXPECT_TRUE(run_graph_test("all")); }

}  // namespace
