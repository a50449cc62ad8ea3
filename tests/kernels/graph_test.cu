// vgpu-graph-test: CUDA graphs and stream capture as real programs use them
// (llama.cpp's pattern above all). An ordinary CUDA program: shared runtime,
// no RPATH, so it runs natively (LD_LIBRARY_PATH=/usr/local/cuda/lib64) or
// through vgpu (LD_LIBRARY_PATH=<vgpu's shim folder>) without a rebuild.
//
//   vgpu-graph-test [--expect-vgpu] [--reference] <subcommand>
//     capture   relaxed-mode capture of memset + 3 kernels + D2D copy + host function on a
//               stream with a fork/join through events onto a second stream; capture state
//               queries; instantiate, launch 10 times, check results (GPU) or launch
//               records, replayed memsets and copies (reference)
//     params    the llama.cpp pattern: GetNodes + NodeGetType, KernelNodeGetParams, compare
//               func with the program's own kernel, rewrite arguments through kernelParams
//               (a float and a pointer), ExecKernelNodeSetParams, launch, verify; then
//               cudaGraphExecUpdate with a re-captured graph, and a refused update
//     explicit  cudaGraphCreate + memset/kernel/memcpy/empty/host/event/child-graph nodes,
//               dependencies, root nodes, node types, clone, launch, verify
//     errors    refusals: legacy-stream capture, nested capture, pageable copies and
//               synchronisation during capture (invalidated capture), foreign handles
//     all       every subcommand
// --reference: the mediator runs the CPU reference executor (kernels are recorded, not run).
// --expect-vgpu: fail unless vgpu's shim is loaded; enables checks that pass forged handles
// (natively those would crash the process, as NVIDIA's runtime dereferences handles).
// Prints `PASS <name>` / `FAIL <name>: <detail>` per check and a summary; exits 1 when
// any check failed or none passed, 2 on bad usage.
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "launch_record.h"  // actors/executor: the record format of vgpuDebugLaunchRecord

// ============================================================================ kernels

__global__ void g_fill(float* p, float v, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) p[i] = v;
}

__global__ void g_add(float* dst, const float* src, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) dst[i] += src[i];
}

__global__ void g_scale(float* p, float f, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) p[i] *= f;
}

// ============================================================================ host side

namespace {

constexpr int N = 1024;
constexpr int kBlock = 128;
constexpr int kGrid = N / kBlock;

bool g_reference = false;
bool g_expect_vgpu = false;
int g_passed = 0, g_failed = 0;

std::string fmt(const char* f, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, f);
  std::vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}

bool check(const std::string& name, bool ok, const std::string& detail = "") {
  if (ok) {
    ++g_passed;
    std::printf("PASS %s\n", name.c_str());
  } else {
    ++g_failed;
    std::printf("FAIL %s: %s\n", name.c_str(), detail.c_str());
  }
  std::fflush(stdout);
  return ok;
}

std::string rc_text(cudaError_t e) { return fmt("%s (%d)", cudaGetErrorName(e), static_cast<int>(e)); }

bool ok_rc(const std::string& name, cudaError_t e) { return check(name, e == cudaSuccess, rc_text(e)); }

bool want_rc(const std::string& name, cudaError_t got, cudaError_t want) {
  cudaGetLastError();  // the expected error is not left behind for the next check
  return check(name, got == want, "got " + rc_text(got) + ", want " + rc_text(want));
}

// --- host functions -------------------------------------------------------------
std::atomic<int> g_host_runs{0};
void host_count(void*) { ++g_host_runs; }

// The notify thread may run host functions a little after a synchronising
// call returned (the reference executor does not wait for the guest).
bool wait_host_runs(int want) {
  for (int i = 0; i < 500 && g_host_runs.load() < want; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  return g_host_runs.load() == want;
}

// --- launch records (reference executor) -----------------------------------------------
using record_fn = cudaError_t (*)(unsigned index, void* out, size_t cap, size_t* size);
record_fn g_record = nullptr;

struct launch_rec {
  vgpu::host::launch_record_header h{};
  std::string name;
  std::vector<uint8_t> params;
};

bool read_record(unsigned index, launch_rec* r) {
  std::vector<uint8_t> buf(64 * 1024);
  size_t size = 0;
  if (!g_record || g_record(index, buf.data(), buf.size(), &size) != cudaSuccess) {
    cudaGetLastError();
    return false;
  }
  if (size < sizeof r->h) return false;
  std::memcpy(&r->h, buf.data(), sizeof r->h);
  if (size != sizeof r->h + r->h.name_len + r->h.param_len) return false;
  r->name.assign(reinterpret_cast<const char*>(buf.data() + sizeof r->h), r->h.name_len);
  while (!r->name.empty() && r->name.back() == '\0') r->name.pop_back();
  const uint8_t* p = buf.data() + sizeof r->h + r->h.name_len;
  r->params.assign(p, p + r->h.param_len);
  return true;
}

// How many records the session holds (they are indexed from the oldest).
unsigned record_count() {
  launch_rec r;
  unsigned lo = 0, hi = 1;
  while (read_record(hi - 1, &r)) {
    lo = hi;
    hi *= 2;
    if (hi > (1u << 20)) return lo;
  }
  // read_record(lo - 1) works (or lo == 0), read_record(hi - 1) does not.
  while (hi - lo > 1) {
    const unsigned mid = lo + (hi - lo) / 2;
    if (read_record(mid - 1, &r)) lo = mid;
    else hi = mid;
  }
  return lo;
}

std::vector<launch_rec> records_since(unsigned first) {
  std::vector<launch_rec> out;
  launch_rec r;
  for (unsigned i = first; read_record(i, &r); ++i) out.push_back(r);
  return out;
}

template <typename T>
T param_at(const launch_rec& r, size_t offset) {
  T v{};
  if (offset + sizeof v <= r.params.size()) std::memcpy(&v, r.params.data() + offset, sizeof v);
  return v;
}

// --- device buffers -----------------------------------------------------------------
struct buffers {
  float *a = nullptr, *b = nullptr, *c = nullptr, *d = nullptr;
  buffers() {
    cudaMalloc(&a, N * sizeof(float));
    cudaMalloc(&b, N * sizeof(float));
    cudaMalloc(&c, N * sizeof(float));
    cudaMalloc(&d, N * sizeof(float));
  }
  ~buffers() {
    cudaFree(a);
    cudaFree(b);
    cudaFree(c);
    cudaFree(d);
  }
  bool ok() const { return a && b && c && d; }
};

void set(float* dev, float v) {
  std::vector<float> h(N, v);
  cudaMemcpy(dev, h.data(), N * sizeof(float), cudaMemcpyHostToDevice);
}

std::vector<float> get(const float* dev) {
  std::vector<float> h(N, -1.0f);
  cudaMemcpy(h.data(), dev, N * sizeof(float), cudaMemcpyDeviceToHost);
  return h;
}

// All N values equal `v` (bitwise for the reference checks of replayed memsets).
bool all_equal(const std::vector<float>& h, float v, std::string* detail) {
  for (int i = 0; i < N; ++i)
    if (std::memcmp(&h[i], &v, sizeof v) != 0) {
      *detail = fmt("[%d] = %g, want %g", i, h[i], v);
      return false;
    }
  return true;
}

bool check_values(const std::string& name, const float* dev, float v) {
  std::string detail;
  const bool ok = all_equal(get(dev), v, &detail);
  return check(name, ok, detail);
}

// Captures on `s` (relaxed mode): a = 0 (memset); b = fill; a += b; c = a
// (D2D); host function; fork onto s2: c *= 3; join. Nodes: 1 memset, 3
// kernels, 1 memcpy, 1 host.
cudaError_t capture_sequence(cudaStream_t s, cudaStream_t s2, cudaEvent_t fork, cudaEvent_t join, const buffers& m,
                             float fill, cudaGraph_t* graph, bool check_states) {
  cudaError_t e = cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed);
  if (e != cudaSuccess) return e;
  if (check_states) {
    cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
    check("capture cudaStreamIsCapturing active", cudaStreamIsCapturing(s, &st) == cudaSuccess &&
                                                      st == cudaStreamCaptureStatusActive,
          fmt("status %d", static_cast<int>(st)));
    unsigned long long id = 0;
    cudaGraph_t building = nullptr;
    st = cudaStreamCaptureStatusNone;
    const cudaError_t ie = cudaStreamGetCaptureInfo(s, &st, &id, &building, nullptr, nullptr, nullptr);
    check("capture cudaStreamGetCaptureInfo", ie == cudaSuccess && st == cudaStreamCaptureStatusActive && id != 0 &&
                                                  building != nullptr,
          fmt("rc %d status %d id %llu graph %p", static_cast<int>(ie), static_cast<int>(st), id,
              static_cast<void*>(building)));
    cudaStreamCaptureStatus st2 = cudaStreamCaptureStatusActive;
    check("capture other stream not capturing", cudaStreamIsCapturing(s2, &st2) == cudaSuccess &&
                                                    st2 == cudaStreamCaptureStatusNone,
          fmt("status %d", static_cast<int>(st2)));
  }
  cudaMemsetAsync(m.a, 0, N * sizeof(float), s);
  g_fill<<<kGrid, kBlock, 0, s>>>(m.b, fill, N);
  g_add<<<kGrid, kBlock, 0, s>>>(m.a, m.b, N);
  cudaMemcpyAsync(m.c, m.a, N * sizeof(float), cudaMemcpyDeviceToDevice, s);
  cudaLaunchHostFunc(s, host_count, nullptr);
  cudaEventRecord(fork, s);
  cudaStreamWaitEvent(s2, fork, 0);
  if (check_states) {
    cudaStreamCaptureStatus st2 = cudaStreamCaptureStatusNone;
    check("capture forked stream joins the capture", cudaStreamIsCapturing(s2, &st2) == cudaSuccess &&
                                                         st2 == cudaStreamCaptureStatusActive,
          fmt("status %d", static_cast<int>(st2)));
  }
  g_scale<<<kGrid, kBlock, 0, s2>>>(m.c, 3.0f, N);
  cudaEventRecord(join, s2);
  cudaStreamWaitEvent(s, join, 0);
  return cudaStreamEndCapture(s, graph);
}

struct node_census {
  int kernel = 0, memset = 0, memcpy = 0, host = 0, other = 0;
};

bool census(cudaGraph_t g, node_census* c, std::vector<cudaGraphNode_t>* nodes) {
  size_t n = 0;
  if (cudaGraphGetNodes(g, nullptr, &n) != cudaSuccess) return false;
  nodes->resize(n);
  if (n && cudaGraphGetNodes(g, nodes->data(), &n) != cudaSuccess) return false;
  for (cudaGraphNode_t node : *nodes) {
    cudaGraphNodeType t;
    if (cudaGraphNodeGetType(node, &t) != cudaSuccess) return false;
    if (t == cudaGraphNodeTypeKernel) ++c->kernel;
    else if (t == cudaGraphNodeTypeMemset) ++c->memset;
    else if (t == cudaGraphNodeTypeMemcpy) ++c->memcpy;
    else if (t == cudaGraphNodeTypeHost) ++c->host;
    else ++c->other;
  }
  return true;
}

// ============================================================================ subcommands

void run_capture() {
  buffers m;
  if (!check("capture cudaMalloc", m.ok())) return;
  cudaStream_t s, s2;
  cudaEvent_t fork, join;
  cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  cudaStreamCreateWithFlags(&s2, cudaStreamNonBlocking);
  cudaEventCreateWithFlags(&fork, cudaEventDisableTiming);
  cudaEventCreateWithFlags(&join, cudaEventDisableTiming);
  set(m.a, 9.0f);
  set(m.c, 9.0f);
  cudaDeviceSynchronize();
  const unsigned before = g_reference ? record_count() : 0;
  const int runs_before = g_host_runs.load();

  cudaGraph_t graph = nullptr;
  if (!ok_rc("capture cudaStreamEndCapture", capture_sequence(s, s2, fork, join, m, 2.0f, &graph, true))) return;
  check("capture graph returned", graph != nullptr, "null graph");
  cudaStreamCaptureStatus st = cudaStreamCaptureStatusActive;
  check("capture ended: not capturing", cudaStreamIsCapturing(s, &st) == cudaSuccess &&
                                            st == cudaStreamCaptureStatusNone,
        fmt("status %d", static_cast<int>(st)));
  st = cudaStreamCaptureStatusActive;
  check("capture ended: forked stream not capturing", cudaStreamIsCapturing(s2, &st) == cudaSuccess &&
                                                          st == cudaStreamCaptureStatusNone,
        fmt("status %d", static_cast<int>(st)));
  if (g_reference)
    check("capture nothing ran during capture", record_count() == before,
          fmt("%u records, %u before", record_count(), before));
  check("capture host function not run during capture", g_host_runs.load() == runs_before,
        fmt("%d runs", g_host_runs.load() - runs_before));

  node_census c;
  std::vector<cudaGraphNode_t> nodes;
  check("capture cudaGraphGetNodes + NodeGetType", census(graph, &c, &nodes), "a call failed");
  check("capture node census", nodes.size() == 6 && c.kernel == 3 && c.memset == 1 && c.memcpy == 1 && c.host == 1,
        fmt("%zu nodes: %d kernel %d memset %d memcpy %d host %d other", nodes.size(), c.kernel, c.memset, c.memcpy,
            c.host, c.other));

  cudaGraphExec_t exec = nullptr;
  if (!ok_rc("capture cudaGraphInstantiate", cudaGraphInstantiate(&exec, graph, 0))) return;
  constexpr int kLaunches = 10;
  cudaError_t le = cudaSuccess;
  for (int i = 0; i < kLaunches && le == cudaSuccess; ++i) le = cudaGraphLaunch(exec, s);
  ok_rc("capture cudaGraphLaunch x10", le);
  ok_rc("capture cudaStreamSynchronize", cudaStreamSynchronize(s));
  check("capture host function ran once per launch", wait_host_runs(runs_before + kLaunches),
        fmt("%d runs, want %d", g_host_runs.load() - runs_before, kLaunches));
  if (g_reference) {
    // Memset and copy replayed for real: a = 0, c = copy of a = 0 (kernels only recorded).
    check_values("capture replayed memset", m.a, 0.0f);
    check_values("capture replayed D2D copy", m.c, 0.0f);
    const auto recs = records_since(before);
    bool order = recs.size() == 3 * kLaunches;
    std::string detail = fmt("%zu records, want %d", recs.size(), 3 * kLaunches);
    for (size_t i = 0; order && i < recs.size(); i += 3) {
      order = recs[i].name.find("g_fill") != std::string::npos && recs[i + 1].name.find("g_add") != std::string::npos &&
              recs[i + 2].name.find("g_scale") != std::string::npos && recs[i].h.stream == reinterpret_cast<uint64_t>(s);
      if (!order) detail = fmt("launch %zu: %s %s %s", i / 3, recs[i].name.c_str(), recs[i + 1].name.c_str(),
                               recs[i + 2].name.c_str());
    }
    check("capture each launch replays the 3 kernels in order on the launch stream", order, detail);
    if (!recs.empty())
      check("capture replayed fill argument", param_at<float>(recs[0], 8) == 2.0f &&
                                                  param_at<uint64_t>(recs[0], 0) == reinterpret_cast<uint64_t>(m.b),
            fmt("v=%g p=%#llx", param_at<float>(recs[0], 8),
                static_cast<unsigned long long>(param_at<uint64_t>(recs[0], 0))));
  } else {
    check_values("capture result a = 2", m.a, 2.0f);
    check_values("capture result c = 6", m.c, 6.0f);
  }
  // A graph launched into a capturing stream: NVIDIA's runtime (CUDA 13,
  // driver 580, H100) refuses it with cudaErrorStreamCaptureUnsupported and
  // invalidates the capture, so no graph comes out of it. vgpu answers the same.
  cudaGraph_t outer = reinterpret_cast<cudaGraph_t>(0x1);
  ok_rc("capture BeginCapture for a nested launch", cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed));
  want_rc("capture cudaGraphLaunch into a capture refused", cudaGraphLaunch(exec, s), cudaErrorStreamCaptureUnsupported);
  want_rc("capture EndCapture of the nested launch", cudaStreamEndCapture(s, &outer), cudaErrorStreamCaptureInvalidated);
  check("capture no graph from the nested launch", outer == nullptr, "a graph came back");
  if (outer && outer != reinterpret_cast<cudaGraph_t>(0x1)) cudaGraphDestroy(outer);
  st = cudaStreamCaptureStatusActive;
  check("capture stream not capturing after the refused launch",
        cudaStreamIsCapturing(s, &st) == cudaSuccess && st == cudaStreamCaptureStatusNone,
        fmt("status %d", static_cast<int>(st)));
  // The exec still launches normally afterwards.
  ok_rc("capture cudaGraphLaunch after the refusal", cudaGraphLaunch(exec, s));
  ok_rc("capture sync after the refusal", cudaStreamSynchronize(s));
  check("capture host function ran for the launch after the refusal", wait_host_runs(runs_before + kLaunches + 1),
        fmt("%d runs", g_host_runs.load() - runs_before));
  ok_rc("capture cudaGraphExecDestroy", cudaGraphExecDestroy(exec));
  ok_rc("capture cudaGraphDestroy", cudaGraphDestroy(graph));
  cudaEventDestroy(fork);
  cudaEventDestroy(join);
  cudaStreamDestroy(s);
  cudaStreamDestroy(s2);
}

// The kernel node of `graph` whose func is `fn`.
cudaGraphNode_t kernel_node(cudaGraph_t graph, const void* fn, cudaKernelNodeParams* p) {
  size_t n = 0;
  cudaGraphGetNodes(graph, nullptr, &n);
  std::vector<cudaGraphNode_t> nodes(n);
  if (n) cudaGraphGetNodes(graph, nodes.data(), &n);
  for (cudaGraphNode_t node : nodes) {
    cudaGraphNodeType t;
    if (cudaGraphNodeGetType(node, &t) != cudaSuccess || t != cudaGraphNodeTypeKernel) continue;
    if (cudaGraphKernelNodeGetParams(node, p) != cudaSuccess) continue;
    if (p->func == fn) return node;
  }
  return nullptr;
}

void run_params() {
  buffers m;
  if (!check("params cudaMalloc", m.ok())) return;
  const int runs_before = g_host_runs.load();
  cudaStream_t s, s2;
  cudaEvent_t fork, join;
  cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  cudaStreamCreateWithFlags(&s2, cudaStreamNonBlocking);
  cudaEventCreateWithFlags(&fork, cudaEventDisableTiming);
  cudaEventCreateWithFlags(&join, cudaEventDisableTiming);
  cudaGraph_t graph = nullptr;
  if (!ok_rc("params capture", capture_sequence(s, s2, fork, join, m, 2.0f, &graph, false))) return;
  cudaGraphExec_t exec = nullptr;
  if (!ok_rc("params cudaGraphInstantiate", cudaGraphInstantiate(&exec, graph, 0))) return;

  // llama.cpp: find its kernel by comparing func with its own symbol.
  cudaKernelNodeParams fill{}, scale{};
  cudaGraphNode_t fill_node = kernel_node(graph, reinterpret_cast<const void*>(g_fill), &fill);
  cudaGraphNode_t scale_node = kernel_node(graph, reinterpret_cast<const void*>(g_scale), &scale);
  if (!check("params GetParams func == the program's kernel", fill_node && scale_node,
             fmt("fill %p scale %p", static_cast<void*>(fill_node), static_cast<void*>(scale_node))))
    return;
  check("params geometry", fill.gridDim.x == kGrid && fill.gridDim.y == 1 && fill.blockDim.x == kBlock &&
                               fill.blockDim.z == 1 && fill.sharedMemBytes == 0,
        fmt("grid %u block %u shm %u", fill.gridDim.x, fill.blockDim.x, fill.sharedMemBytes));
  check("params arguments read back", fill.kernelParams && *static_cast<float**>(fill.kernelParams[0]) == m.b &&
                                          *static_cast<float*>(fill.kernelParams[1]) == 2.0f &&
                                          *static_cast<int*>(fill.kernelParams[2]) == N,
        "kernelParams do not hold (b, 2.0, N)");
  cudaKernelNodeParams again{};
  cudaGraphKernelNodeGetParams(fill_node, &again);
  check("params kernelParams stable across GetParams", again.kernelParams && again.kernelParams[1] == fill.kernelParams[1],
        "the argument pointers moved");

  // Rewrite: a value through the returned pointer (fill 5.0), and a pointer
  // argument by replacing the array's entry, as older llama.cpp does (scale d
  // instead of c).
  *static_cast<float*>(fill.kernelParams[1]) = 5.0f;
  float* new_target = m.d;
  scale.kernelParams[0] = &new_target;
  ok_rc("params ExecKernelNodeSetParams (value)", cudaGraphExecKernelNodeSetParams(exec, fill_node, &fill));
  ok_rc("params ExecKernelNodeSetParams (pointer)", cudaGraphExecKernelNodeSetParams(exec, scale_node, &scale));
  // What GetParams hands out is the node's own storage (CUDA: "owned by the
  // node ... should not be modified directly"); NVIDIA's runtime (CUDA 13, H100)
  // neither re-points the array nor refreshes the values on the next GetParams:
  // the replaced entry is still the caller's pointer, and the value written
  // through kernelParams[1] is now the graph node's. vgpu mirrors that in the guest.
  cudaKernelNodeParams scale_again{};
  cudaGraphKernelNodeGetParams(scale_node, &scale_again);
  check("params GetParams after an entry was replaced returns the node's array as the caller left it",
        scale_again.kernelParams && scale_again.kernelParams[0] == static_cast<void*>(&new_target),
        fmt("kernelParams[0] %p, the caller's %p", scale_again.kernelParams ? scale_again.kernelParams[0] : nullptr,
            static_cast<void*>(&new_target)));
  cudaKernelNodeParams graph_side{};
  cudaGraphKernelNodeGetParams(fill_node, &graph_side);
  check("params a value written through kernelParams is the graph node's",
        graph_side.kernelParams && *static_cast<float*>(graph_side.kernelParams[1]) == 5.0f,
        fmt("value %g, want 5", graph_side.kernelParams ? *static_cast<float*>(graph_side.kernelParams[1]) : -1.0f));
  set(m.d, 1.0f);
  cudaDeviceSynchronize();
  const unsigned before = g_reference ? record_count() : 0;
  ok_rc("params cudaGraphLaunch", cudaGraphLaunch(exec, s));
  ok_rc("params cudaStreamSynchronize", cudaStreamSynchronize(s));
  if (g_reference) {
    const auto recs = records_since(before);
    const bool ok = recs.size() == 3 && param_at<float>(recs[0], 8) == 5.0f &&
                    param_at<uint64_t>(recs[2], 0) == reinterpret_cast<uint64_t>(m.d);
    check("params the launch used the rewritten arguments", ok,
          fmt("%zu records; fill v=%g, scale p=%#llx (d=%p)", recs.size(), recs.empty() ? 0.0f : param_at<float>(recs[0], 8),
              recs.size() < 3 ? 0ull : static_cast<unsigned long long>(param_at<uint64_t>(recs[2], 0)),
              static_cast<void*>(m.d)));
  } else {
    check_values("params b = 5 (rewritten value)", m.b, 5.0f);
    check_values("params c = a = 5 (scale moved away)", m.c, 5.0f);
    check_values("params d = 3 (rewritten pointer)", m.d, 3.0f);
  }

  // cudaGraphKernelNodeSetParams changes the graph's node (a new instance sees it).
  *static_cast<float*>(graph_side.kernelParams[1]) = 4.0f;
  ok_rc("params cudaGraphKernelNodeSetParams", cudaGraphKernelNodeSetParams(fill_node, &graph_side));
  cudaKernelNodeParams reread{};
  cudaGraphKernelNodeGetParams(fill_node, &reread);
  check("params graph node rewritten", reread.kernelParams && *static_cast<float*>(reread.kernelParams[1]) == 4.0f,
        "GetParams does not show the new value");

  // llama.cpp's next token: a fresh capture, cudaGraphExecUpdate into the exec.
  cudaGraph_t graph2 = nullptr;
  ok_rc("params re-capture", capture_sequence(s, s2, fork, join, m, 7.0f, &graph2, false));
  cudaGraphExecUpdateResultInfo info{};
  ok_rc("params cudaGraphExecUpdate", cudaGraphExecUpdate(exec, graph2, &info));
  check("params update result success", info.result == cudaGraphExecUpdateSuccess,
        fmt("result %d", static_cast<int>(info.result)));
  // The node handle is the one of the graph the exec was instantiated from
  // (what CUDA documents); the parameters are the new graph's.
  cudaKernelNodeParams fill2{};
  cudaGraphNode_t fill2_node = kernel_node(graph2, reinterpret_cast<const void*>(g_fill), &fill2);
  check("params new graph's fill node found", fill2_node != nullptr && fill2.kernelParams &&
                                                  *static_cast<float*>(fill2.kernelParams[1]) == 7.0f,
        "not found, or its value is not 7");
  if (fill2_node) {
    *static_cast<float*>(fill2.kernelParams[1]) = 8.0f;
    ok_rc("params ExecKernelNodeSetParams after the update", cudaGraphExecKernelNodeSetParams(exec, fill_node, &fill2));
  }
  const unsigned before2 = g_reference ? record_count() : 0;
  ok_rc("params cudaGraphLaunch after update", cudaGraphLaunch(exec, s));
  ok_rc("params sync after update", cudaStreamSynchronize(s));
  if (g_reference) {
    const auto recs = records_since(before2);
    check("params updated exec launched the new arguments",
          recs.size() == 3 && param_at<float>(recs[0], 8) == 8.0f &&
              param_at<uint64_t>(recs[2], 0) == reinterpret_cast<uint64_t>(m.c),
          fmt("%zu records, fill v=%g", recs.size(), recs.empty() ? 0.0f : param_at<float>(recs[0], 8)));
  } else {
    check_values("params after update b = 8", m.b, 8.0f);
    check_values("params after update c = 24", m.c, 24.0f);
  }

  // llama.cpp's steady state: the graph's own node rewritten (an entry of
  // kernelParams replaced), then cudaGraphExecUpdate with that same graph.
  cudaKernelNodeParams lp{};
  ok_rc("params steady state GetParams", cudaGraphKernelNodeGetParams(fill_node, &lp));
  float six = 6.0f;
  if (lp.kernelParams) lp.kernelParams[1] = &six;
  ok_rc("params steady state cudaGraphKernelNodeSetParams", cudaGraphKernelNodeSetParams(fill_node, &lp));
  cudaGraphExecUpdateResultInfo same{};
  ok_rc("params steady state cudaGraphExecUpdate (same graph)", cudaGraphExecUpdate(exec, graph, &same));
  const unsigned before3 = g_reference ? record_count() : 0;
  ok_rc("params steady state launch", cudaGraphLaunch(exec, s));
  ok_rc("params steady state sync", cudaStreamSynchronize(s));
  if (g_reference) {
    const auto recs = records_since(before3);
    check("params steady state launched the graph's new argument and its own pointers",
          recs.size() == 3 && param_at<float>(recs[0], 8) == 6.0f &&
              param_at<uint64_t>(recs[2], 0) == reinterpret_cast<uint64_t>(m.c),
          fmt("%zu records, fill v=%g", recs.size(), recs.empty() ? 0.0f : param_at<float>(recs[0], 8)));
  } else {
    check_values("params steady state b = 6", m.b, 6.0f);
    check_values("params steady state c = 18", m.c, 18.0f);
  }

  // A graph of another shape cannot update the exec.
  cudaGraph_t small = nullptr;
  cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed);
  g_fill<<<kGrid, kBlock, 0, s>>>(m.b, 1.0f, N);
  ok_rc("params capture of another shape", cudaStreamEndCapture(s, &small));
  cudaGraphExecUpdateResultInfo bad{};
  want_rc("params update with another topology refused", cudaGraphExecUpdate(exec, small, &bad),
          cudaErrorGraphExecUpdateFailure);
  check("params refused update says why", bad.result != cudaGraphExecUpdateSuccess,
        fmt("result %d", static_cast<int>(bad.result)));
  // The 3 launches ran the captured host function each; waited for here so
  // that none of them is counted by the next subcommand (the reference
  // executor does not wait for the guest's host functions).
  check("params host function ran once per launch", wait_host_runs(runs_before + 3),
        fmt("%d runs, want 3", g_host_runs.load() - runs_before));

  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaGraphDestroy(graph2);
  cudaGraphDestroy(small);
  cudaEventDestroy(fork);
  cudaEventDestroy(join);
  cudaStreamDestroy(s);
  cudaStreamDestroy(s2);
}

void run_explicit() {
  buffers m;
  if (!check("explicit cudaMalloc", m.ok())) return;
  cudaStream_t s;
  cudaStreamCreate(&s);
  cudaEvent_t ev;
  cudaEventCreate(&ev);
  set(m.a, 9.0f);
  set(m.c, 2.0f);
  set(m.d, 0.0f);
  cudaDeviceSynchronize();

  cudaGraph_t g = nullptr;
  if (!ok_rc("explicit cudaGraphCreate", cudaGraphCreate(&g, 0))) return;
  // a = 1.0 (a 4-byte pattern memset)
  cudaMemsetParams ms{};
  ms.dst = m.a;
  ms.elementSize = 4;
  const float one = 1.0f;
  std::memcpy(&ms.value, &one, 4);
  ms.width = N;
  ms.height = 1;
  cudaGraphNode_t n_memset, n_add, n_copy, n_empty, n_host, n_rec, n_child;
  ok_rc("explicit AddMemsetNode", cudaGraphAddMemsetNode(&n_memset, g, nullptr, 0, &ms));
  // c += a
  int n_arg = N;
  void* add_args[] = {&m.c, &m.a, &n_arg};
  cudaKernelNodeParams kp{};
  kp.func = reinterpret_cast<void*>(g_add);
  kp.gridDim = dim3(kGrid);
  kp.blockDim = dim3(kBlock);
  kp.kernelParams = add_args;
  ok_rc("explicit AddKernelNode", cudaGraphAddKernelNode(&n_add, g, &n_memset, 1, &kp));
  ok_rc("explicit AddMemcpyNode1D", cudaGraphAddMemcpyNode1D(&n_copy, g, &n_add, 1, m.d, m.c, N * sizeof(float),
                                                             cudaMemcpyDeviceToDevice));
  ok_rc("explicit AddEmptyNode", cudaGraphAddEmptyNode(&n_empty, g, nullptr, 0));
  ok_rc("explicit AddDependencies", cudaGraphAddDependencies(g, &n_copy, &n_empty, nullptr, 1));
  cudaHostNodeParams hp{host_count, nullptr};
  ok_rc("explicit AddHostNode", cudaGraphAddHostNode(&n_host, g, &n_empty, 1, &hp));
  ok_rc("explicit AddEventRecordNode", cudaGraphAddEventRecordNode(&n_rec, g, &n_host, 1, ev));
  // A child graph: b = 4
  cudaGraph_t child = nullptr;
  cudaGraphCreate(&child, 0);
  float four = 4.0f;
  void* fill_args[] = {&m.b, &four, &n_arg};
  cudaKernelNodeParams fp{};
  fp.func = reinterpret_cast<void*>(g_fill);
  fp.gridDim = dim3(kGrid);
  fp.blockDim = dim3(kBlock);
  fp.kernelParams = fill_args;
  cudaGraphNode_t child_fill;
  ok_rc("explicit child AddKernelNode", cudaGraphAddKernelNode(&child_fill, child, nullptr, 0, &fp));
  ok_rc("explicit AddChildGraphNode", cudaGraphAddChildGraphNode(&n_child, g, &n_rec, 1, child));
  cudaGraphDestroy(child);  // the node holds its own copy

  size_t roots = 0;
  ok_rc("explicit GetRootNodes count", cudaGraphGetRootNodes(g, nullptr, &roots));
  cudaGraphNode_t root = nullptr;
  size_t one_root = 1;
  cudaGraphGetRootNodes(g, &root, &one_root);
  check("explicit one root, the memset", roots == 1 && root == n_memset, fmt("%zu roots", roots));
  struct want_type {
    cudaGraphNode_t n;
    cudaGraphNodeType t;
    const char* name;
  } types[] = {{n_memset, cudaGraphNodeTypeMemset, "memset"}, {n_add, cudaGraphNodeTypeKernel, "kernel"},
               {n_copy, cudaGraphNodeTypeMemcpy, "memcpy"},   {n_empty, cudaGraphNodeTypeEmpty, "empty"},
               {n_host, cudaGraphNodeTypeHost, "host"},       {n_rec, cudaGraphNodeTypeEventRecord, "event record"},
               {n_child, cudaGraphNodeTypeGraph, "child graph"}};
  for (const auto& w : types) {
    cudaGraphNodeType t = cudaGraphNodeTypeCount;
    cudaGraphNodeGetType(w.n, &t);
    check(std::string("explicit NodeGetType ") + w.name, t == w.t, fmt("type %d", static_cast<int>(t)));
  }

  cudaGraph_t clone = nullptr;
  ok_rc("explicit cudaGraphClone", cudaGraphClone(&clone, g));
  size_t cn = 0;
  cudaGraphGetNodes(clone, nullptr, &cn);
  check("explicit clone has 7 nodes", cn == 7, fmt("%zu", cn));

  cudaGraphExec_t exec = nullptr, exec2 = nullptr;
  ok_rc("explicit cudaGraphInstantiateWithFlags", cudaGraphInstantiateWithFlags(&exec, g, 0));
  ok_rc("explicit instantiate clone", cudaGraphInstantiate(&exec2, clone, 0));
  const int runs_before = g_host_runs.load();
  const unsigned before = g_reference ? record_count() : 0;
  ok_rc("explicit cudaGraphUpload", cudaGraphUpload(exec, s));
  ok_rc("explicit cudaGraphLaunch", cudaGraphLaunch(exec, s));
  ok_rc("explicit sync", cudaStreamSynchronize(s));
  ok_rc("explicit cudaEventSynchronize (recorded by the graph)", cudaEventSynchronize(ev));
  check("explicit host node ran", wait_host_runs(runs_before + 1), fmt("%d runs", g_host_runs.load() - runs_before));
  check_values("explicit memset node wrote a 4-byte pattern", m.a, 1.0f);
  if (g_reference) {
    check_values("explicit memcpy node copied c to d", m.d, 2.0f);  // kernels recorded only: c stays 2
    const auto recs = records_since(before);
    check("explicit kernel and child kernel recorded", recs.size() == 2 && recs[0].name.find("g_add") != std::string::npos &&
                                                           recs[1].name.find("g_fill") != std::string::npos &&
                                                           param_at<float>(recs[1], 8) == 4.0f,
          fmt("%zu records", recs.size()));
  } else {
    check_values("explicit kernel node c = 3", m.c, 3.0f);
    check_values("explicit memcpy node d = 3", m.d, 3.0f);
    check_values("explicit child graph b = 4", m.b, 4.0f);
  }
  ok_rc("explicit launch clone", cudaGraphLaunch(exec2, s));
  ok_rc("explicit sync clone", cudaStreamSynchronize(s));
  check("explicit clone's host node ran", wait_host_runs(runs_before + 2),
        fmt("%d runs", g_host_runs.load() - runs_before));
  cudaGraphExecDestroy(exec);
  cudaGraphExecDestroy(exec2);
  cudaGraphDestroy(clone);
  ok_rc("explicit cudaGraphDestroy", cudaGraphDestroy(g));
  cudaEventDestroy(ev);
  cudaStreamDestroy(s);
}

void run_errors() {
  buffers m;
  if (!check("errors cudaMalloc", m.ok())) return;
  cudaStream_t s;
  cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking);
  cudaGraph_t g = nullptr;

  want_rc("errors capture of the legacy stream", cudaStreamBeginCapture(nullptr, cudaStreamCaptureModeGlobal),
          cudaErrorStreamCaptureUnsupported);
  want_rc("errors EndCapture without a capture", cudaStreamEndCapture(s, &g), cudaErrorIllegalState);
  ok_rc("errors BeginCapture (thread-local)", cudaStreamBeginCapture(s, cudaStreamCaptureModeThreadLocal));
  want_rc("errors nested BeginCapture", cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed),
          cudaErrorIllegalState);
  g_fill<<<kGrid, kBlock, 0, s>>>(m.a, 1.0f, N);
  ok_rc("errors EndCapture", cudaStreamEndCapture(s, &g));
  cudaGraphDestroy(g);

  // Copies between pageable host memory and the device during a capture.
  // NVIDIA's runtime (CUDA 13, driver 580, H100) accepts them, in global and in
  // relaxed mode, and captures them as memcpy nodes. vgpu cannot: the guest's
  // pageable memory is not reachable by the host when the graph runs later (a
  // captured node would hold a pointer into the transfer region), so vgpu
  // refuses them with cudaErrorStreamCaptureUnsupported and invalidates the
  // capture, a documented difference (README). Each side checks its own answer.
  std::vector<float> host(N, 1.0f);
  const cudaError_t want_copy = g_expect_vgpu ? cudaErrorStreamCaptureUnsupported : cudaSuccess;
  const cudaError_t want_end = g_expect_vgpu ? cudaErrorStreamCaptureInvalidated : cudaSuccess;
  ok_rc("errors BeginCapture (global)", cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
  want_rc("errors H2D copy of pageable memory during capture",
          cudaMemcpyAsync(m.a, host.data(), N * sizeof(float), cudaMemcpyHostToDevice, s), want_copy);
  cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
  cudaStreamIsCapturing(s, &st);
  check(g_expect_vgpu ? "errors capture now invalidated (vgpu)" : "errors capture still active",
        st == (g_expect_vgpu ? cudaStreamCaptureStatusInvalidated : cudaStreamCaptureStatusActive),
        fmt("status %d", static_cast<int>(st)));
  g = reinterpret_cast<cudaGraph_t>(0x1);
  want_rc("errors EndCapture after the H2D copy", cudaStreamEndCapture(s, &g), want_end);
  check(g_expect_vgpu ? "errors no graph from an invalidated capture (vgpu)" : "errors graph of the H2D copy",
        g_expect_vgpu ? g == nullptr : (g != nullptr && g != reinterpret_cast<cudaGraph_t>(0x1)),
        fmt("graph %p", static_cast<void*>(g)));
  if (g && g != reinterpret_cast<cudaGraph_t>(0x1)) cudaGraphDestroy(g);
  g = nullptr;

  ok_rc("errors BeginCapture (relaxed)", cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed));
  want_rc("errors D2H copy during capture",
          cudaMemcpyAsync(host.data(), m.a, N * sizeof(float), cudaMemcpyDeviceToHost, s), want_copy);
  want_rc("errors EndCapture after D2H", cudaStreamEndCapture(s, &g), want_end);
  if (g) cudaGraphDestroy(g);
  g = nullptr;

  ok_rc("errors BeginCapture (relaxed) 2", cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed));
  want_rc("errors cudaStreamSynchronize during capture", cudaStreamSynchronize(s), cudaErrorStreamCaptureUnsupported);
  want_rc("errors EndCapture after synchronize", cudaStreamEndCapture(s, &g), cudaErrorStreamCaptureInvalidated);

  // The stream works normally afterwards.
  ok_rc("errors stream usable after", cudaMemsetAsync(m.a, 0, N * sizeof(float), s));
  ok_rc("errors stream sync after", cudaStreamSynchronize(s));

  cudaStreamCaptureMode mode = cudaStreamCaptureModeRelaxed;
  ok_rc("errors ThreadExchangeStreamCaptureMode", cudaThreadExchangeStreamCaptureMode(&mode));
  check("errors previous mode was global", mode == cudaStreamCaptureModeGlobal, fmt("mode %d", static_cast<int>(mode)));
  cudaThreadExchangeStreamCaptureMode(&mode);
  check("errors mode restored", mode == cudaStreamCaptureModeRelaxed, fmt("mode %d", static_cast<int>(mode)));

  // A dependency from another graph.
  cudaGraph_t g1, g2;
  cudaGraphCreate(&g1, 0);
  cudaGraphCreate(&g2, 0);
  cudaGraphNode_t e1, e2;
  cudaGraphAddEmptyNode(&e1, g1, nullptr, 0);
  want_rc("errors dependency from another graph", cudaGraphAddEmptyNode(&e2, g2, &e1, 1), cudaErrorInvalidValue);
  cudaKernelNodeParams kp{};
  want_rc("errors KernelNodeGetParams of an empty node", cudaGraphKernelNodeGetParams(e1, &kp), cudaErrorInvalidValue);
  cudaGraphDestroy(g1);
  cudaGraphDestroy(g2);

  if (g_expect_vgpu) {
    // vgpu-specific: the host's per-thread stream is a worker thread's, shared
    // by sessions, so vgpu refuses to capture it (NVIDIA's runtime allows it).
    want_rc("errors capture of the per-thread stream refused by vgpu",
            cudaStreamBeginCapture(cudaStreamPerThread, cudaStreamCaptureModeRelaxed),
            cudaErrorStreamCaptureUnsupported);
    // Forged handles: NVIDIA's runtime would dereference them; vgpu checks them.
    auto fake_graph = reinterpret_cast<cudaGraph_t>(0xdead0);
    auto fake_node = reinterpret_cast<cudaGraphNode_t>(0xdead0);
    auto fake_exec = reinterpret_cast<cudaGraphExec_t>(0xdead0);
    cudaGraphExec_t x = nullptr;
    want_rc("errors instantiate a forged graph", cudaGraphInstantiate(&x, fake_graph, 0), cudaErrorInvalidValue);
    cudaGraphNodeType t;
    want_rc("errors type of a forged node", cudaGraphNodeGetType(fake_node, &t), cudaErrorInvalidValue);
    want_rc("errors destroy a forged graph", cudaGraphDestroy(fake_graph), cudaErrorInvalidValue);
    want_rc("errors destroy a forged exec", cudaGraphExecDestroy(fake_exec), cudaErrorInvalidValue);
    // A posted launch of a forged exec: its error surfaces at the next synchronisation.
    cudaGraphLaunch(fake_exec, s);
    const cudaError_t late = cudaStreamSynchronize(s);
    cudaGetLastError();
    check("errors launch of a forged exec surfaces at sync", late != cudaSuccess, rc_text(late));
    ok_rc("errors sync after the reported error", cudaStreamSynchronize(s));
  }
  cudaGetLastError();
  cudaStreamDestroy(s);
}

void check_vgpu_loaded() {
  check("vgpu shim loaded", dlsym(RTLD_DEFAULT, "vgpuShimInfo") != nullptr,
        "vgpuShimInfo not found: NVIDIA's runtime is loaded, not vgpu's");
}

int usage() {
  std::fprintf(stderr,
               "usage: vgpu-graph-test [--expect-vgpu] [--reference] capture|params|explicit|errors|all\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::string cmd;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--expect-vgpu") g_expect_vgpu = true;
    else if (a == "--reference") g_reference = true;
    else if (a.rfind("--", 0) == 0 || !cmd.empty()) return usage();
    else cmd = a;
  }
  if (cmd.empty()) return usage();
  if (g_expect_vgpu) check_vgpu_loaded();
  if (g_reference) {
    g_record = reinterpret_cast<record_fn>(dlsym(RTLD_DEFAULT, "vgpuDebugLaunchRecord"));
    check("vgpuDebugLaunchRecord found", g_record != nullptr, "not exported by the loaded runtime");
  }
  if (cmd == "capture" || cmd == "all") run_capture();
  if (cmd == "params" || cmd == "all") run_params();
  if (cmd == "explicit" || cmd == "all") run_explicit();
  if (cmd == "errors" || cmd == "all") run_errors();
  if (cmd != "capture" && cmd != "params" && cmd != "explicit" && cmd != "errors" && cmd != "all") return usage();
  std::printf("SUMMARY %s%s: %d passed, %d failed\n", cmd.c_str(), g_reference ? " (reference)" : "", g_passed,
              g_failed);
  if (g_passed == 0) {
    std::printf("FAIL %s: no check passed\n", cmd.c_str());
    return 1;
  }
  return g_failed == 0 ? 0 : 1;
}
