// Stream capture and graphs on a real GPU. The guest's stream is a host
// CUstream, so capture is the driver's own: between cuStreamBeginCapture and
// cuStreamEndCapture the launches, memsets, device copies, event records and
// waits and host functions the guest posts on that stream (and on streams
// joined to it through events) become nodes of a real CUgraph. Graphs, nodes
// and executable graphs get session-scoped ids; every id and every pointer
// the guest names is checked against the session's tables before it reaches
// the driver.
//
// The host always captures in relaxed mode: a worker thread serves many
// sessions, and a global or thread-local capture would make the driver refuse
// other sessions' "unsafe" calls (cuMemAlloc, ...) on that thread. The guest
// keeps the mode it asked for in its own mirror.
#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstring>
#include <unordered_map>
#include <vector>

#include <spdlog/spdlog.h>

#include "actors/executor/cuda/cuda_errors.h"
#include "actors/executor/cuda/cuda_session.h"

namespace vgpu::host::cuda {

namespace {

constexpr size_t kMaxIds = 1 << 16;  // dependencies / edges in one request

CUresult in_context(CUcontext c) {
  CUcontext current = nullptr;
  if (cuCtxGetCurrent(&current) == CUDA_SUCCESS && current == c) return CUDA_SUCCESS;
  return cuCtxSetCurrent(c);
}

// A host node's call: unlike a stream's one-shot host function it runs at
// every launch of the graph, so the session owns it (graph_state::host_calls).
struct graph_host_call {
  std::shared_ptr<guest_notifier> notifier;
  uint64_t token = 0;
};

void CUDA_CB run_graph_host_call(void* p) {
  auto* call = static_cast<graph_host_call*>(p);
  const uint64_t place = call->notifier->post(call->token);
  if (place == 0) return;  // the guest is gone
  call->notifier->wait_done(place);
}

// An id the guest named that this session does not have.
cudaError_t no_such(const char* call, const char* kind, uint64_t id, const call_context& c) {
  spdlog::debug("[cuda-executor] {}: no {} {:#x} in this session (vm={})", call, kind, id, c.vm_id);
  return cudaErrorInvalidValue;
}

struct graph_entry {
  CUgraph graph = nullptr;
  bool capturing = false;   // the driver's until cuStreamEndCapture
  uint64_t stream = 0;      // the capturing stream's guest id
};

}  // namespace

struct cuda_session::graph_state {
  uint64_t next_id = 0x6700000;  // one sequence for graphs, nodes and execs
  std::unordered_map<uint64_t, graph_entry> graphs;
  std::unordered_map<uint64_t, CUgraphExec> execs;
  struct node_entry {
    CUgraphNode node = nullptr;
    uint64_t graph = 0;
  };
  std::unordered_map<uint64_t, node_entry> nodes;
  std::unordered_map<CUgraphNode, uint64_t> node_ids;
  std::unordered_map<uint64_t, uint64_t> capturing;  // guest stream id -> graph id
  std::vector<std::unique_ptr<graph_host_call>> host_calls;
  std::vector<shared_event> events;  // events graph nodes name: alive while the session is
  std::unordered_map<CUfunction, std::vector<std::pair<size_t, size_t>>> layouts;

  uint64_t issue() { return next_id += 0x10; }
  uint64_t id_of(CUgraphNode n, uint64_t graph) {
    auto it = node_ids.find(n);
    if (it != node_ids.end()) return it->second;
    const uint64_t id = issue();
    node_ids.emplace(n, id);
    nodes.emplace(id, node_entry{n, graph});
    return id;
  }
  CUgraphNode node_of(uint64_t id) {
    auto it = nodes.find(id);
    return it == nodes.end() ? nullptr : it->second.node;
  }
  graph_entry* graph_of(uint64_t id) {
    auto it = graphs.find(id);
    return it == graphs.end() ? nullptr : &it->second;
  }
  // Node ids from the data area, each a node of `graph`.
  cudaError_t read_nodes(uint64_t graph, const_bytes bytes, std::vector<CUgraphNode>* out) {
    if (bytes.size % 8 != 0 || bytes.size / 8 > kMaxIds) return cudaErrorInvalidValue;
    out->resize(bytes.size / 8);
    for (size_t i = 0; i < out->size(); ++i) {
      uint64_t id = 0;
      std::memcpy(&id, bytes.data + i * 8, 8);
      auto it = nodes.find(id);
      if (it == nodes.end() || it->second.graph != graph) return cudaErrorInvalidValue;
      (*out)[i] = it->second.node;
    }
    return cudaSuccess;
  }
  void forget_nodes(uint64_t graph) {
    for (auto it = nodes.begin(); it != nodes.end();) {
      if (it->second.graph == graph) {
        node_ids.erase(it->second.node);
        it = nodes.erase(it);
      } else {
        ++it;
      }
    }
  }
};

void cuda_session::graph_state_deleter::operator()(graph_state* g) const { delete g; }

cuda_session::graph_state& cuda_session::graphs() {
  if (!graphs_) graphs_.reset(new graph_state);
  return *graphs_;
}

// Called first in the destructor, in the context, while streams still exist.
void cuda_session::drop_graphs() {
  if (!graphs_) return;
  graph_state& gs = *graphs_;
  for (auto& [id, e] : gs.execs) cuGraphExecDestroy(e);
  gs.execs.clear();
  for (auto& [id, g] : gs.graphs) {
    if (!g.capturing) {
      cuGraphDestroy(g.graph);
      continue;
    }
    CUstream s = nullptr;
    CUgraph ended = nullptr;
    if (resolve_stream(g.stream, &s) && cuStreamEndCapture(s, &ended) == CUDA_SUCCESS && ended) cuGraphDestroy(ended);
  }
  gs.graphs.clear();
  // A host node may still be on its way through a stream (its guest is gone:
  // the call returns at once); its call must outlive that.
  if (!gs.host_calls.empty()) cuCtxSynchronize();
  graphs_.reset();
}

bool cuda_session::capture_host_func(call_context& c, CUstream s, uint64_t token, cudaError_t* st) {
  CUstreamCaptureStatus status = CU_STREAM_CAPTURE_STATUS_NONE;
  if (cuStreamIsCapturing(s, &status) != CUDA_SUCCESS || status == CU_STREAM_CAPTURE_STATUS_NONE) return false;
  auto call = std::make_unique<graph_host_call>(graph_host_call{c.notifier, token});
  *st = check(cuLaunchHostFunc(s, run_graph_host_call, call.get()), "cuLaunchHostFunc (capture)", c);
  if (*st == cudaSuccess) graphs().host_calls.push_back(std::move(call));
  return true;
}

cudaError_t cuda_session::capture_refuses(CUstream s, const char* call, const call_context& c) {
  CUstreamCaptureStatus status = CU_STREAM_CAPTURE_STATUS_NONE;
  if (cuStreamIsCapturing(s, &status) != CUDA_SUCCESS || status == CU_STREAM_CAPTURE_STATUS_NONE)
    return cudaSuccess;
  spdlog::debug("[cuda-executor] {}: host memory through the data area cannot be captured (vm={})", call,
                c.vm_id);
  return cudaErrorStreamCaptureUnsupported;
}

// --- capture ---------------------------------------------------------------------

cudaError_t cuda_session::on_vgpuStreamBeginCapture(call_context& c, uint64_t stream, int32_t mode,
                                                    uint64_t* captureId, uint64_t* graph) {
  if (const CUresult r = in_context(ctx_.get()); r != CUDA_SUCCESS) return check(r, "cuCtxSetCurrent", c);
  CUstream s = nullptr;
  if (!resolve_stream(stream, &s)) return bad_handle("vgpuStreamBeginCapture", "stream", stream, c);
  if (mode != cudaStreamCaptureModeGlobal && mode != cudaStreamCaptureModeThreadLocal &&
      mode != cudaStreamCaptureModeRelaxed)
    return cudaErrorInvalidValue;
  // The legacy streams cannot be captured (as in CUDA); the per-thread stream
  // is the worker thread's, shared by every session it serves, so a capture
  // there would take in other guests' work: refused too.
  if (is_builtin_stream(stream)) return cudaErrorStreamCaptureUnsupported;
  auto& gs = graphs();
  if (gs.capturing.count(stream)) return cudaErrorIllegalState;
  if (cudaError_t st = check(cuStreamBeginCapture(s, CU_STREAM_CAPTURE_MODE_RELAXED), "cuStreamBeginCapture", c);
      st != cudaSuccess)
    return st;
  CUstreamCaptureStatus status = CU_STREAM_CAPTURE_STATUS_NONE;
  cuuint64_t id = 0;
  CUgraph g = nullptr;
  const CUresult r = cuStreamGetCaptureInfo(s, &status, &id, &g, nullptr, nullptr, nullptr);
  if (r != CUDA_SUCCESS || !g) {
    CUgraph dropped = nullptr;
    if (cuStreamEndCapture(s, &dropped) == CUDA_SUCCESS && dropped) cuGraphDestroy(dropped);
    return check(r != CUDA_SUCCESS ? r : CUDA_ERROR_UNKNOWN, "cuStreamGetCaptureInfo", c);
  }
  *graph = gs.issue();
  gs.graphs.emplace(*graph, graph_entry{g, true, stream});
  gs.capturing[stream] = *graph;
  *captureId = id;
  return cudaSuccess;
}

cudaError_t cuda_session::on_vgpuStreamEndCapture(call_context& c, uint64_t stream, uint64_t* graph) {
  if (const CUresult r = in_context(ctx_.get()); r != CUDA_SUCCESS) return check(r, "cuCtxSetCurrent", c);
  *graph = 0;
  CUstream s = nullptr;
  if (!resolve_stream(stream, &s)) return bad_handle("vgpuStreamEndCapture", "stream", stream, c);
  auto& gs = graphs();
  auto it = gs.capturing.find(stream);
  if (it == gs.capturing.end()) return cudaErrorIllegalState;
  const uint64_t id = it->second;
  gs.capturing.erase(it);
  CUgraph g = nullptr;
  const CUresult r = cuStreamEndCapture(s, &g);
  if (r != CUDA_SUCCESS || !g) {
    // Invalidated: the driver dropped the graph (and its nodes).
    gs.forget_nodes(id);
    gs.graphs.erase(id);
    return check(r != CUDA_SUCCESS ? r : CUDA_ERROR_STREAM_CAPTURE_INVALIDATED, "cuStreamEndCapture", c);
  }
  graph_entry& e = gs.graphs.at(id);
  e.graph = g;
  e.capturing = false;
  *graph = id;
  return cudaSuccess;
}

// --- graphs -------------------------------------------------------------------------

cudaError_t cuda_session::on_vgpuGraphCreate(call_context& c, uint64_t* graph, uint32_t flags) {
  if (flags != 0) return cudaErrorInvalidValue;
  CUgraph g = nullptr;
  if (cudaError_t st = check(cuGraphCreate(&g, 0), "cuGraphCreate", c); st != cudaSuccess) return st;
  auto& gs = graphs();
  *graph = gs.issue();
  gs.graphs.emplace(*graph, graph_entry{g, false, 0});
  return cudaSuccess;
}

cudaError_t cuda_session::on_vgpuGraphDestroy(call_context& c, uint64_t graph) {
  auto& gs = graphs();
  graph_entry* e = gs.graph_of(graph);
  if (!e) return no_such("vgpuGraphDestroy", "graph", graph, c);
  if (e->capturing) return cudaErrorIllegalState;
  cuGraphDestroy(e->graph);
  gs.forget_nodes(graph);
  gs.graphs.erase(graph);
  return cudaSuccess;
}

cudaError_t cuda_session::on_vgpuGraphClone(call_context& c, uint64_t* clone, uint64_t graph) {
  auto& gs = graphs();
  graph_entry* e = gs.graph_of(graph);
  if (!e || e->capturing) return no_such("vgpuGraphClone", "graph", graph, c);
  CUgraph g = nullptr;
  if (cudaError_t st = check(cuGraphClone(&g, e->graph), "cuGraphClone", c); st != cudaSuccess) return st;
  *clone = gs.issue();
  gs.graphs.emplace(*clone, graph_entry{g, false, 0});
  return cudaSuccess;
}

// The common start of adding a node: a graph the guest may change, and its dependencies.
#define VGPU_GRAPH_NODE_PROLOGUE(call)                                                    \
  if (const CUresult r_ = in_context(ctx_.get()); r_ != CUDA_SUCCESS)                     \
    return check(r_, "cuCtxSetCurrent", c);                                               \
  auto& gs = graphs();                                                                    \
  graph_entry* ge = gs.graph_of(graph);                                                   \
  if (!ge || ge->capturing) return no_such(call, "graph", graph, c); \
  std::vector<CUgraphNode> dv;                                                            \
  if (gs.read_nodes(graph, deps, &dv) != cudaSuccess) return cudaErrorInvalidValue;      \
  CUgraphNode made = nullptr

cudaError_t cuda_session::on_vgpuGraphAddKernelNode(call_context& c, uint64_t* node, uint64_t graph,
                                                    const_bytes deps, uint64_t function, uint32_t gridX,
                                                    uint32_t gridY, uint32_t gridZ, uint32_t blockX, uint32_t blockY,
                                                    uint32_t blockZ, uint32_t sharedMem, const_bytes params) {
  VGPU_GRAPH_NODE_PROLOGUE("vgpuGraphAddKernelNode");
  CUDA_KERNEL_NODE_PARAMS p;
  std::vector<void*> args;
  if (cudaError_t st = kernel_params(c, function, gridX, gridY, gridZ, blockX, blockY, blockZ, sharedMem, params, &p,
                                     &args);
      st != cudaSuccess)
    return st;
  if (cudaError_t st =
          check(cuGraphAddKernelNode(&made, ge->graph, dv.data(), dv.size(), &p), "cuGraphAddKernelNode", c);
      st != cudaSuccess)
    return st;
  *node = gs.id_of(made, graph);
  return cudaSuccess;
}

cudaError_t cuda_session::on_vgpuGraphAddMemsetNode(call_context& c, uint64_t* node, uint64_t graph,
                                                    const_bytes deps, uint64_t dst, uint64_t pitch, uint32_t value,
                                                    uint32_t elementSize, uint64_t width, uint64_t height) {
  VGPU_GRAPH_NODE_PROLOGUE("vgpuGraphAddMemsetNode");
  if ((elementSize != 1 && elementSize != 2 && elementSize != 4) || width == 0 || height == 0 ||
      width > (uint64_t{1} << 40) / elementSize || height > (uint64_t{1} << 20))
    return cudaErrorInvalidValue;
  const uint64_t row = width * elementSize;
  if (height > 1 && pitch < row) return cudaErrorInvalidValue;
  // The whole pitched area, first row to last, must be the session's memory.
  const uint64_t span = (height - 1) * (height > 1 ? pitch : 0) + row;
  if (cudaError_t st = check_range("vgpuGraphAddMemsetNode", c, dst, span); st != cudaSuccess) return st;
  CUDA_MEMSET_NODE_PARAMS p{};
  p.dst = dst;
  p.pitch = height > 1 ? pitch : row;
  p.value = value;
  p.elementSize = elementSize;
  p.width = width;
  p.height = height;
  if (cudaError_t st = check(cuGraphAddMemsetNode(&made, ge->graph, dv.data(), dv.size(), &p, ctx_.get()),
                             "cuGraphAddMemsetNode", c);
      st != cudaSuccess)
    return st;
  *node = gs.id_of(made, graph);
  return cudaSuccess;
}

cudaError_t cuda_session::on_vgpuGraphAddMemcpyNode(call_context& c, uint64_t* node, uint64_t graph,
                                                    const_bytes deps, uint64_t dst, uint64_t src, uint64_t count) {
  VGPU_GRAPH_NODE_PROLOGUE("vgpuGraphAddMemcpyNode");
  if (count == 0) return cudaErrorInvalidValue;
  if (cudaError_t st = check_range("vgpuGraphAddMemcpyNode", c, src, count); st != cudaSuccess) return st;
  if (cudaError_t st = check_range("vgpuGraphAddMemcpyNode", c, dst, count); st != cudaSuccess) return st;
  CUDA_MEMCPY3D p;
  std::memset(&p, 0, sizeof p);
  p.srcMemoryType = CU_MEMORYTYPE_DEVICE;
  p.srcDevice = src;
  p.dstMemoryType = CU_MEMORYTYPE_DEVICE;
  p.dstDevice = dst;
  p.WidthInBytes = count;
  p.Height = 1;
  p.Depth = 1;
  if (cudaError_t st = check(cuGraphAddMemcpyNode(&made, ge->graph, dv.data(), dv.size(), &p, ctx_.get()),
                             "cuGraphAddMemcpyNode", c);
      st != cudaSuccess)
    return st;
  *node = gs.id_of(made, graph);
  return cudaSuccess;
}

cudaError_t cuda_session::on_vgpuGraphAddEmptyNode(call_context& c, uint64_t* node, uint64_t graph,
                                                   const_bytes deps) {
  VGPU_GRAPH_NODE_PROLOGUE("vgpuGraphAddEmptyNode");
  if (cudaError_t st = check(cuGraphAddEmptyNode(&made, ge->graph, dv.data(), dv.size()), "cuGraphAddEmptyNode", c);
      st != cudaSuccess)
    return st;
  *node = gs.id_of(made, graph);
  return cudaSuccess;
}

cudaError_t cuda_session::on_vgpuGraphAddHostNode(call_context& c, uint64_t* node, uint64_t graph,
                                                  const_bytes deps, uint64_t token) {
  VGPU_GRAPH_NODE_PROLOGUE("vgpuGraphAddHostNode");
  if (!c.notifier) return cudaErrorNotSupported;  // a channel without a notify ring
  auto call = std::make_unique<graph_host_call>(graph_host_call{c.notifier, token});
  CUDA_HOST_NODE_PARAMS p{};
  p.fn = run_graph_host_call;
  p.userData = call.get();
  if (cudaError_t st = check(cuGraphAddHostNode(&made, ge->graph, dv.data(), dv.size(), &p), "cuGraphAddHostNode", c);
      st != cudaSuccess)
    return st;
  gs.host_calls.push_back(std::move(call));
  *node = gs.id_of(made, graph);
  return cudaSuccess;
}

cudaError_t cuda_session::on_vgpuGraphAddEventNode(call_context& c, uint64_t* node, uint64_t graph,
                                                   const_bytes deps, uint64_t event, uint32_t wait) {
  VGPU_GRAPH_NODE_PROLOGUE("vgpuGraphAddEventNode");
  const shared_event* ev = events_.find(event);
  if (!ev) return bad_handle("vgpuGraphAddEventNode", "event", event, c);
  if (wait > 1) return cudaErrorInvalidValue;
  const CUresult r = wait ? cuGraphAddEventWaitNode(&made, ge->graph, dv.data(), dv.size(), ev->get())
                          : cuGraphAddEventRecordNode(&made, ge->graph, dv.data(), dv.size(), ev->get());
  if (cudaError_t st = check(r, "cuGraphAddEvent*Node", c); st != cudaSuccess) return st;
  gs.events.push_back(*ev);  // the node names it: it lives as long as the session
  *node = gs.id_of(made, graph);
  return cudaSuccess;
}

cudaError_t cuda_session::on_vgpuGraphAddChildGraphNode(call_context& c, uint64_t* node, uint64_t graph,
                                                        const_bytes deps, uint64_t child) {
  VGPU_GRAPH_NODE_PROLOGUE("vgpuGraphAddChildGraphNode");
  graph_entry* ce = gs.graph_of(child);
  if (!ce || ce->capturing || child == graph)
    return no_such("vgpuGraphAddChildGraphNode", "graph", child, c);
  // The driver clones the child: later changes to it do not reach the node.
  if (cudaError_t st = check(cuGraphAddChildGraphNode(&made, ge->graph, dv.data(), dv.size(), ce->graph),
                             "cuGraphAddChildGraphNode", c);
      st != cudaSuccess)
    return st;
  *node = gs.id_of(made, graph);
  return cudaSuccess;
}

#undef VGPU_GRAPH_NODE_PROLOGUE

cudaError_t cuda_session::on_vgpuGraphAddDependencies(call_context& c, uint64_t graph, const_bytes edges) {
  auto& gs = graphs();
  graph_entry* ge = gs.graph_of(graph);
  if (!ge || ge->capturing) return no_such("vgpuGraphAddDependencies", "graph", graph, c);
  if (edges.size % 16 != 0) return cudaErrorInvalidValue;
  std::vector<CUgraphNode> both;
  if (gs.read_nodes(graph, edges, &both) != cudaSuccess) return cudaErrorInvalidValue;
  std::vector<CUgraphNode> from, to;
  for (size_t i = 0; i < both.size(); i += 2) {
    from.push_back(both[i]);
    to.push_back(both[i + 1]);
  }
  return check(cuGraphAddDependencies(ge->graph, from.data(), to.data(), nullptr, from.size()),
               "cuGraphAddDependencies", c);
}

cudaError_t cuda_session::on_vgpuGraphGetNodes(call_context& c, uint64_t graph, uint32_t rootsOnly, mut_bytes nodes,
                                               uint64_t* count) {
  auto& gs = graphs();
  graph_entry* ge = gs.graph_of(graph);
  if (!ge) return no_such("vgpuGraphGetNodes", "graph", graph, c);
  size_t n = 0;
  const auto list = [&](CUgraphNode* out, size_t* num) {
    return rootsOnly ? cuGraphGetRootNodes(ge->graph, out, num) : cuGraphGetNodes(ge->graph, out, num);
  };
  if (cudaError_t st = check(list(nullptr, &n), "cuGraphGetNodes", c); st != cudaSuccess) return st;
  std::vector<CUgraphNode> all(n);
  if (n != 0)
    if (cudaError_t st = check(list(all.data(), &n), "cuGraphGetNodes", c); st != cudaSuccess) return st;
  all.resize(n);
  for (size_t i = 0; i < n; ++i) {
    const uint64_t id = gs.id_of(all[i], graph);  // nodes of a capture get their ids here
    if ((i + 1) * 8 <= nodes.size) std::memcpy(nodes.data + i * 8, &id, 8);
  }
  *count = n;
  return cudaSuccess;
}

cudaError_t cuda_session::on_vgpuGraphNodeGetType(call_context& c, uint64_t node, int32_t* type) {
  CUgraphNode n = graphs().node_of(node);
  if (!n) return no_such("vgpuGraphNodeGetType", "node", node, c);
  CUgraphNodeType t = CU_GRAPH_NODE_TYPE_EMPTY;
  if (cudaError_t st = check(cuGraphNodeGetType(n, &t), "cuGraphNodeGetType", c); st != cudaSuccess) return st;
  *type = static_cast<int32_t>(t);  // CUgraphNodeType and cudaGraphNodeType share their values
  return cudaSuccess;
}

// --- kernel node parameters -----------------------------------------------------------

const std::vector<std::pair<size_t, size_t>>* cuda_session::param_layout(CUfunction fn) {
  auto& gs = graphs();
  auto it = gs.layouts.find(fn);
  if (it != gs.layouts.end()) return &it->second;
  std::vector<std::pair<size_t, size_t>> layout;
  for (uint32_t i = 0; i < (1u << 15); ++i) {
    size_t off = 0, size = 0;
    CUresult r = cuFuncGetParamInfo(fn, i, &off, &size);
    if (r == CUDA_ERROR_FUNCTION_NOT_LOADED && cuFuncLoad(fn) == CUDA_SUCCESS) r = cuFuncGetParamInfo(fn, i, &off, &size);
    if (r == CUDA_ERROR_INVALID_VALUE) break;  // past the last parameter
    if (r != CUDA_SUCCESS) return nullptr;
    layout.emplace_back(off, size);
  }
  return &gs.layouts.emplace(fn, std::move(layout)).first->second;
}

cudaError_t cuda_session::kernel_params(const call_context& c, uint64_t function, uint32_t gridX, uint32_t gridY,
                                        uint32_t gridZ, uint32_t blockX, uint32_t blockY, uint32_t blockZ,
                                        uint32_t sharedMem, const_bytes params, CUDA_KERNEL_NODE_PARAMS* p,
                                        std::vector<void*>* args) {
  const function_entry* f = find_function(function);
  if (!f) {
    bad_handle("graph kernel node", "function", function, c);  // logs it
    return cudaErrorInvalidDeviceFunction;
  }
  if (params.size != f->param_bytes) return cudaErrorInvalidValue;
  if (!gridX || !gridY || !gridZ || !blockX || !blockY || !blockZ) return cudaErrorInvalidConfiguration;
  const auto* layout = param_layout(f->fn);
  if (!layout) return cudaErrorInvalidDeviceFunction;
  // kernelParams point into the request's parameter block; the driver copies
  // the values before the call returns.
  args->clear();
  for (const auto& [off, size] : *layout) {
    if (off + size > params.size) return cudaErrorInvalidValue;
    args->push_back(const_cast<uint8_t*>(params.data) + off);
  }
  std::memset(p, 0, sizeof *p);
  p->func = f->fn;
  p->gridDimX = gridX;
  p->gridDimY = gridY;
  p->gridDimZ = gridZ;
  p->blockDimX = blockX;
  p->blockDimY = blockY;
  p->blockDimZ = blockZ;
  p->sharedMemBytes = sharedMem;
  p->kernelParams = args->empty() ? nullptr : args->data();
  return cudaSuccess;
}

cudaError_t cuda_session::on_vgpuGraphKernelNodeGetParams(call_context& c, uint64_t node, uint64_t* graph,
                                                          uint64_t* function,
                                                          uint32_t* gridX, uint32_t* gridY, uint32_t* gridZ,
                                                          uint32_t* blockX, uint32_t* blockY, uint32_t* blockZ,
                                                          uint32_t* sharedMem, mut_bytes params,
                                                          uint32_t* paramBytes) {
  if (const CUresult r = in_context(ctx_.get()); r != CUDA_SUCCESS) return check(r, "cuCtxSetCurrent", c);
  CUgraphNode n = graphs().node_of(node);
  if (!n) return no_such("vgpuGraphKernelNodeGetParams", "node", node, c);
  *graph = graphs().nodes.at(node).graph;
  CUgraphNodeType t = CU_GRAPH_NODE_TYPE_EMPTY;
  if (cuGraphNodeGetType(n, &t) != CUDA_SUCCESS || t != CU_GRAPH_NODE_TYPE_KERNEL) return cudaErrorInvalidValue;
  CUDA_KERNEL_NODE_PARAMS p;
  std::memset(&p, 0, sizeof p);
  if (cudaError_t st = check(cuGraphKernelNodeGetParams(n, &p), "cuGraphKernelNodeGetParams", c); st != cudaSuccess)
    return st;
  *gridX = p.gridDimX;
  *gridY = p.gridDimY;
  *gridZ = p.gridDimZ;
  *blockX = p.blockDimX;
  *blockY = p.blockDimY;
  *blockZ = p.blockDimZ;
  *sharedMem = p.sharedMemBytes;
  *function = 0;
  *paramBytes = 0;
  // The guest's id of the function; a kernel it never looked up has none.
  // A node may name its kernel as a CUkernel only (func NULL).
  if (!p.func && p.kern) cuKernelGetFunction(&p.func, p.kern);
  for (auto& [id, f] : functions_.all())
    if (f.fn == p.func) {
      *function = id;
      break;
    }
  if (*function == 0) return cudaSuccess;
  const function_entry* f = find_function(*function);
  const auto* layout = param_layout(f->fn);
  if (!layout || f->param_bytes > params.size) return cudaErrorInvalidValue;
  std::memset(params.data, 0, f->param_bytes);
  if (p.kernelParams) {
    for (size_t i = 0; i < layout->size(); ++i) {
      const auto [off, size] = (*layout)[i];
      if (off + size > f->param_bytes || !p.kernelParams[i]) return cudaErrorUnknown;
      std::memcpy(params.data + off, p.kernelParams[i], size);
    }
  } else if (p.extra) {
    // A node that keeps the packed form it was launched with.
    const void* buf = nullptr;
    size_t len = 0;
    for (size_t k = 0; k + 1 < 16 && p.extra[k] != CU_LAUNCH_PARAM_END; k += 2) {
      if (p.extra[k] == CU_LAUNCH_PARAM_BUFFER_POINTER) buf = p.extra[k + 1];
      else if (p.extra[k] == CU_LAUNCH_PARAM_BUFFER_SIZE) std::memcpy(&len, p.extra[k + 1], sizeof len);
    }
    if (buf) std::memcpy(params.data, buf, std::min<size_t>(len, f->param_bytes));
  }
  *paramBytes = static_cast<uint32_t>(f->param_bytes);
  return cudaSuccess;
}

cudaError_t cuda_session::on_vgpuGraphKernelNodeSetParams(call_context& c, uint64_t exec, uint64_t node,
                                                          uint64_t function, uint32_t gridX, uint32_t gridY,
                                                          uint32_t gridZ, uint32_t blockX, uint32_t blockY,
                                                          uint32_t blockZ, uint32_t sharedMem, const_bytes params) {
  if (const CUresult r = in_context(ctx_.get()); r != CUDA_SUCCESS) return check(r, "cuCtxSetCurrent", c);
  auto& gs = graphs();
  CUgraphNode n = gs.node_of(node);
  if (!n) return no_such("vgpuGraphKernelNodeSetParams", "node", node, c);
  CUgraphExec x = nullptr;
  if (exec != 0) {
    auto it = gs.execs.find(exec);
    if (it == gs.execs.end()) return no_such("vgpuGraphKernelNodeSetParams", "exec", exec, c);
    x = it->second;
  }
  CUgraphNodeType t = CU_GRAPH_NODE_TYPE_EMPTY;
  if (cuGraphNodeGetType(n, &t) != CUDA_SUCCESS || t != CU_GRAPH_NODE_TYPE_KERNEL) return cudaErrorInvalidValue;
  CUDA_KERNEL_NODE_PARAMS p;
  std::vector<void*> args;
  if (cudaError_t st =
          kernel_params(c, function, gridX, gridY, gridZ, blockX, blockY, blockZ, sharedMem, params, &p, &args);
      st != cudaSuccess)
    return st;
  if (x) return check(cuGraphExecKernelNodeSetParams(x, n, &p), "cuGraphExecKernelNodeSetParams", c);
  return check(cuGraphKernelNodeSetParams(n, &p), "cuGraphKernelNodeSetParams", c);
}

// --- executable graphs ------------------------------------------------------------------

cudaError_t cuda_session::on_vgpuGraphInstantiate(call_context& c, uint64_t* exec, uint64_t graph, uint64_t flags) {
  if (const CUresult r = in_context(ctx_.get()); r != CUDA_SUCCESS) return check(r, "cuCtxSetCurrent", c);
  auto& gs = graphs();
  graph_entry* ge = gs.graph_of(graph);
  if (!ge || ge->capturing) return no_such("vgpuGraphInstantiate", "graph", graph, c);
  // Device launch needs device-side graph handles the guest cannot use; the
  // other flags mean the same to the driver.
  constexpr uint64_t kAllowed = CUDA_GRAPH_INSTANTIATE_FLAG_AUTO_FREE_ON_LAUNCH | CUDA_GRAPH_INSTANTIATE_FLAG_UPLOAD |
                                CUDA_GRAPH_INSTANTIATE_FLAG_USE_NODE_PRIORITY;
  if ((flags & ~kAllowed) != 0) return cudaErrorInvalidValue;
  CUgraphExec x = nullptr;
  if (cudaError_t st = check(cuGraphInstantiate(&x, ge->graph, flags), "cuGraphInstantiate", c); st != cudaSuccess)
    return st;
  *exec = gs.issue();
  gs.execs.emplace(*exec, x);
  return cudaSuccess;
}

cudaError_t cuda_session::on_vgpuGraphExecDestroy(call_context& c, uint64_t exec) {
  auto& gs = graphs();
  auto it = gs.execs.find(exec);
  if (it == gs.execs.end()) return no_such("vgpuGraphExecDestroy", "exec", exec, c);
  // cuGraphExecDestroy does not wait for launches in flight; the driver keeps
  // what they need until they finish.
  cuGraphExecDestroy(it->second);
  gs.execs.erase(it);
  return cudaSuccess;
}

cudaError_t cuda_session::on_vgpuGraphExecUpdate(call_context& c, uint64_t exec, uint64_t graph, int32_t* result,
                                                 uint64_t* errorNode) {
  if (const CUresult r = in_context(ctx_.get()); r != CUDA_SUCCESS) return check(r, "cuCtxSetCurrent", c);
  *result = cudaGraphExecUpdateError;
  *errorNode = 0;
  auto& gs = graphs();
  auto it = gs.execs.find(exec);
  if (it == gs.execs.end()) return no_such("vgpuGraphExecUpdate", "exec", exec, c);
  graph_entry* ge = gs.graph_of(graph);
  if (!ge || ge->capturing) return no_such("vgpuGraphExecUpdate", "graph", graph, c);
  CUgraphExecUpdateResultInfo info;
  std::memset(&info, 0, sizeof info);
  const CUresult r = cuGraphExecUpdate(it->second, ge->graph, &info);
  if (r != CUDA_SUCCESS && r != CUDA_ERROR_GRAPH_EXEC_UPDATE_FAILURE) return check(r, "cuGraphExecUpdate", c);
  // The verdict travels in `result` (the guest turns a refusal into
  // cudaErrorGraphExecUpdateFailure); the enums share their values.
  *result = r == CUDA_SUCCESS ? cudaGraphExecUpdateSuccess : static_cast<int32_t>(info.result);
  if (r != CUDA_SUCCESS && *result == cudaGraphExecUpdateSuccess) *result = cudaGraphExecUpdateError;
  if (info.errorNode) *errorNode = gs.id_of(info.errorNode, graph);
  return cudaSuccess;
}

cudaError_t cuda_session::on_vgpuGraphLaunch(call_context& c, uint64_t exec, uint64_t stream) {
  if (const CUresult r = in_context(ctx_.get()); r != CUDA_SUCCESS) return check(r, "cuCtxSetCurrent", c);
  auto& gs = graphs();
  auto it = gs.execs.find(exec);
  if (it == gs.execs.end()) return no_such("vgpuGraphLaunch", "exec", exec, c);
  CUstream s = nullptr;
  if (!resolve_stream(stream, &s)) return bad_handle("vgpuGraphLaunch", "stream", stream, c);
  return check(cuGraphLaunch(it->second, s), "cuGraphLaunch", c);
}

cudaError_t cuda_session::on_vgpuGraphUpload(call_context& c, uint64_t exec, uint64_t stream) {
  if (const CUresult r = in_context(ctx_.get()); r != CUDA_SUCCESS) return check(r, "cuCtxSetCurrent", c);
  auto& gs = graphs();
  auto it = gs.execs.find(exec);
  if (it == gs.execs.end()) return no_such("vgpuGraphUpload", "exec", exec, c);
  CUstream s = nullptr;
  if (!resolve_stream(stream, &s)) return bad_handle("vgpuGraphUpload", "stream", stream, c);
  return check(cuGraphUpload(it->second, s), "cuGraphUpload", c);
}

}  // namespace vgpu::host::cuda
