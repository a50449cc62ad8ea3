// Stream capture and graphs on the reference executor. A graph is an ordered
// list of recorded operations with their dependencies (insertion order is a
// topological order: a node can only depend on nodes that exist). Capture
// turns the posted operations of a capturing stream into nodes; launching an
// executable graph replays them in order on the launch stream: memsets and
// copies for real, kernels recorded with their current parameters (so tests
// see through vgpuDebugLaunchRecord what a parameter update changed), host
// nodes posted to the guest.
#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <unordered_map>
#include <unordered_set>

#include <spdlog/spdlog.h>

#include "actors/executor/reference/reference_session.h"

namespace vgpu::host::reference {

namespace {

constexpr uint32_t kAsyncFlag = 1u << 0;
constexpr size_t kMaxNodesPerGraph = 1 << 20;

struct node {
  uint64_t id = 0;
  cudaGraphNodeType type = cudaGraphNodeTypeEmpty;
  std::vector<uint64_t> deps;  // node ids of the same graph
  // kernel: function, geometry (as a launch record header carries it), parameter block
  uint64_t function = 0;
  launch_record_header launch{};
  std::vector<uint8_t> params;
  // memset (2D: height rows of width elements, pitch apart) and memcpy
  uint64_t dst = 0, src = 0, pitch = 0, width = 0, height = 0, count = 0;
  uint32_t value = 0, element_size = 1;
  uint64_t token = 0;  // host
  uint64_t event = 0;  // event record / wait
  // A child node's graph: a copy made when the node was added (CUDA clones
  // it), immutable, shared by clones and executable copies of the node.
  std::shared_ptr<const struct graph> child;
};

struct graph {
  std::vector<node> nodes;
  std::unordered_map<uint64_t, size_t> index;  // node id -> position
  bool capturing = false;                      // still being built by a capture
};

struct exec {
  graph g;  // a snapshot: later changes of the source graph do not reach it
  // Node ids that name a position: the instantiated graph's, and those of
  // graphs it was updated from (cudaGraphExecUpdate pairs them).
};

struct capture {
  uint64_t id = 0;
  uint64_t graph = 0;
  uint64_t origin = 0;
  bool invalidated = false;
};

struct stream_capture {
  uint64_t capture = 0;
  std::vector<uint64_t> tail;  // what the next captured node depends on
};

bool is_legacy(uint64_t stream) { return stream == kStreamLegacyDefault || stream == kStreamLegacy; }

}  // namespace

struct reference_session::graph_state {
  uint64_t next_id = 0x6700000;  // one sequence for graphs, nodes, execs and captures
  std::map<uint64_t, graph> graphs;
  std::map<uint64_t, exec> execs;
  std::unordered_map<uint64_t, uint64_t> node_graph;  // node id -> graph id (graphs and children)
  std::map<uint64_t, capture> captures;
  std::unordered_map<uint64_t, stream_capture> streams;  // capturing streams
  std::unordered_map<uint64_t, stream_capture> events;   // events recorded in a capture

  uint64_t issue() { return next_id += 0x10; }
  graph* find_graph(uint64_t id) {
    auto it = graphs.find(id);
    return it == graphs.end() ? nullptr : &it->second;
  }
  graph* owner_of(uint64_t node) {
    auto it = node_graph.find(node);
    if (it == node_graph.end()) return nullptr;
    auto g = graphs.find(it->second);
    return g == graphs.end() ? nullptr : &g->second;
  }
  node* find_node(uint64_t id) {
    graph* g = owner_of(id);
    return g ? &g->nodes[g->index.at(id)] : nullptr;
  }
  // Copies `src` into a new graph with fresh node ids (cudaGraphClone).
  uint64_t copy_graph(const graph& src) {
    const uint64_t gid = issue();
    graph g;
    std::unordered_map<uint64_t, uint64_t> renamed;
    for (const node& n : src.nodes) {
      node c = n;
      c.id = issue();
      renamed[n.id] = c.id;
      for (uint64_t& d : c.deps) d = renamed.at(d);
      g.index[c.id] = g.nodes.size();
      node_graph[c.id] = gid;
      g.nodes.push_back(std::move(c));
    }
    graphs.emplace(gid, std::move(g));
    return gid;
  }
  void drop_graph(uint64_t id) {
    auto it = graphs.find(id);
    if (it == graphs.end()) return;
    for (const node& n : it->second.nodes) node_graph.erase(n.id);
    graphs.erase(it);
  }
  // The common part of adding a node: the graph exists, is not being
  // captured, and the dependencies are its nodes.
  cudaError_t prepare(uint64_t graph_id, const_bytes deps, graph** g, node* n, const call_context& ctx,
                      const char* call);
  // Appends a node to the graph `gid`; its id.
  uint64_t append(uint64_t gid, graph& g, node n) {
    n.id = issue();
    g.index[n.id] = g.nodes.size();
    node_graph[n.id] = gid;
    g.nodes.push_back(std::move(n));
    return g.nodes.back().id;
  }
  // Appends a node a capturing stream produced: it follows the stream's
  // current tail and becomes the new tail.
  void append_captured(uint64_t stream, node n) {
    stream_capture& sc = streams[stream];
    const capture& c = captures.at(sc.capture);
    n.deps = sc.tail;
    sc.tail = {append(c.graph, graphs.at(c.graph), std::move(n))};
  }
};

void reference_session::graph_state_deleter::operator()(graph_state* g) const { delete g; }

reference_session::graph_state& reference_session::graphs() {
  if (!graphs_) graphs_.reset(new graph_state);
  return *graphs_;
}

namespace {

cudaError_t no_such(const char* call, const char* what, uint64_t id, const call_context& ctx) {
  spdlog::debug("[reference-executor] {}: no {} {:#x} in this session (vm={})", call, what, id, ctx.vm_id);
  return cudaErrorInvalidValue;
}

// Node ids from the data area; every one must be a node of `g`.
cudaError_t read_deps(const graph& g, const_bytes deps, std::vector<uint64_t>* out) {
  if (deps.size % 8 != 0) return cudaErrorInvalidValue;
  out->resize(deps.size / 8);
  if (!out->empty()) std::memcpy(out->data(), deps.data, deps.size);
  std::unordered_set<uint64_t> seen;
  for (uint64_t d : *out)
    if (!g.index.count(d) || !seen.insert(d).second) return cudaErrorInvalidValue;
  return cudaSuccess;
}

}  // namespace

// --- capture hooks (called by the posted operations) ----------------------------

bool reference_session::capture_launch(uint64_t function, const launch_record_header& h, const_bytes params) {
  if (!graphs_ || !graphs_->streams.count(h.stream)) return false;
  node n;
  n.type = cudaGraphNodeTypeKernel;
  n.function = function;
  n.launch = h;
  n.params.assign(params.data, params.data + params.size);
  graphs_->append_captured(h.stream, std::move(n));
  return true;
}

bool reference_session::capture_memset(uint64_t stream, uint64_t dst, int32_t value, uint64_t count) {
  if (!graphs_ || !graphs_->streams.count(stream)) return false;
  node n;
  n.type = cudaGraphNodeTypeMemset;
  n.dst = dst;
  n.value = static_cast<uint8_t>(value);
  n.element_size = 1;
  n.width = count;
  n.height = 1;
  n.pitch = count;
  graphs_->append_captured(stream, std::move(n));
  return true;
}

bool reference_session::capture_copy(uint64_t stream, uint64_t dst, uint64_t src, uint64_t count) {
  if (!graphs_ || !graphs_->streams.count(stream)) return false;
  node n;
  n.type = cudaGraphNodeTypeMemcpy;
  n.dst = dst;
  n.src = src;
  n.count = count;
  graphs_->append_captured(stream, std::move(n));
  return true;
}

bool reference_session::capture_host_func(uint64_t stream, uint64_t token) {
  if (!graphs_ || !graphs_->streams.count(stream)) return false;
  node n;
  n.type = cudaGraphNodeTypeHost;
  n.token = token;
  graphs_->append_captured(stream, std::move(n));
  return true;
}

bool reference_session::capture_event_record(uint64_t event, uint64_t stream) {
  if (!graphs_) return false;
  auto& gs = *graphs_;
  auto it = gs.streams.find(stream);
  if (it == gs.streams.end()) {
    gs.events.erase(event);  // recorded outside any capture again
    return false;
  }
  // Inside a capture an event marks a point (the stream's current tail) for
  // the streams that wait on it; it becomes no node of its own.
  gs.events[event] = it->second;
  return true;
}

bool reference_session::capture_event_wait(uint64_t stream, uint64_t event) {
  if (!graphs_) return false;
  auto& gs = *graphs_;
  auto ev = gs.events.find(event);
  if (ev == gs.events.end()) return false;
  auto st = gs.streams.find(stream);
  if (st == gs.streams.end()) {
    if (is_legacy(stream)) return false;
    gs.streams[stream] = ev->second;  // the stream joins the capture (a fork)
    return true;
  }
  if (st->second.capture != ev->second.capture) return false;
  for (uint64_t d : ev->second.tail)  // a join: the next node waits for both
    if (std::find(st->second.tail.begin(), st->second.tail.end(), d) == st->second.tail.end())
      st->second.tail.push_back(d);
  return true;
}

cudaError_t reference_session::capture_refuses(uint64_t stream, const char* call) {
  if (!graphs_) return cudaSuccess;
  auto it = graphs_->streams.find(stream);
  if (it == graphs_->streams.end()) return cudaSuccess;
  graphs_->captures.at(it->second.capture).invalidated = true;
  spdlog::debug("[reference-executor] {}: not allowed in a capture; the capture is invalidated (vm={})", call,
                info_.vm_id);
  return cudaErrorStreamCaptureUnsupported;
}

// --- capture ------------------------------------------------------------------

cudaError_t reference_session::on_vgpuStreamBeginCapture(call_context& ctx, uint64_t stream, int32_t mode,
                                                         uint64_t* captureId, uint64_t* graph_id) {
  if (!stream_ok(stream)) {
    no_such("vgpuStreamBeginCapture", "stream", stream, ctx);
    return cudaErrorInvalidResourceHandle;
  }
  if (mode != cudaStreamCaptureModeGlobal && mode != cudaStreamCaptureModeThreadLocal &&
      mode != cudaStreamCaptureModeRelaxed)
    return cudaErrorInvalidValue;
  // Builtin streams: as the cuda executor, which refuses the per-thread stream
  // too (on the host it is a worker thread's, shared by sessions).
  if (is_builtin_stream(stream)) return cudaErrorStreamCaptureUnsupported;
  auto& gs = graphs();
  if (gs.streams.count(stream)) return cudaErrorIllegalState;
  capture c;
  c.id = gs.issue();
  c.graph = gs.issue();
  c.origin = stream;
  graph g;
  g.capturing = true;
  gs.graphs.emplace(c.graph, std::move(g));
  gs.captures.emplace(c.id, c);
  gs.streams[stream] = stream_capture{c.id, {}};
  *captureId = c.id;
  *graph_id = c.graph;
  return cudaSuccess;
}

cudaError_t reference_session::on_vgpuStreamEndCapture(call_context& ctx, uint64_t stream, uint64_t* graph_id) {
  *graph_id = 0;
  if (!stream_ok(stream)) {
    no_such("vgpuStreamEndCapture", "stream", stream, ctx);
    return cudaErrorInvalidResourceHandle;
  }
  auto& gs = graphs();
  auto it = gs.streams.find(stream);
  if (it == gs.streams.end()) return cudaErrorIllegalState;
  const capture c = gs.captures.at(it->second.capture);
  if (c.origin != stream) return cudaErrorStreamCaptureUnmatched;
  // Every stream of the capture leaves it (CUDA would insist they rejoined first).
  for (auto s = gs.streams.begin(); s != gs.streams.end();)
    s = s->second.capture == c.id ? gs.streams.erase(s) : std::next(s);
  for (auto e = gs.events.begin(); e != gs.events.end();)
    e = e->second.capture == c.id ? gs.events.erase(e) : std::next(e);
  gs.captures.erase(c.id);
  if (c.invalidated) {
    gs.drop_graph(c.graph);
    return cudaErrorStreamCaptureInvalidated;
  }
  gs.graphs.at(c.graph).capturing = false;
  *graph_id = c.graph;
  return cudaSuccess;
}

// --- graphs and nodes -------------------------------------------------------------

cudaError_t reference_session::on_vgpuGraphCreate(call_context&, uint64_t* graph_id, uint32_t flags) {
  if (flags != 0) return cudaErrorInvalidValue;
  auto& gs = graphs();
  *graph_id = gs.issue();
  gs.graphs.emplace(*graph_id, graph{});
  return cudaSuccess;
}

cudaError_t reference_session::on_vgpuGraphDestroy(call_context& ctx, uint64_t graph_id) {
  auto& gs = graphs();
  graph* g = gs.find_graph(graph_id);
  if (!g) return no_such("vgpuGraphDestroy", "graph", graph_id, ctx);
  if (g->capturing) return cudaErrorIllegalState;  // EndCapture owns it until then
  gs.drop_graph(graph_id);
  return cudaSuccess;
}

cudaError_t reference_session::on_vgpuGraphClone(call_context& ctx, uint64_t* clone, uint64_t graph_id) {
  auto& gs = graphs();
  graph* g = gs.find_graph(graph_id);
  if (!g) return no_such("vgpuGraphClone", "graph", graph_id, ctx);
  const graph copy = *g;  // copy_graph inserts into the map g lives in
  *clone = gs.copy_graph(copy);
  return cudaSuccess;
}

cudaError_t reference_session::graph_state::prepare(uint64_t graph_id, const_bytes deps, graph** g, node* n,
                                                    const call_context& ctx, const char* call) {
  *g = find_graph(graph_id);
  if (!*g) return no_such(call, "graph", graph_id, ctx);
  if ((*g)->capturing || (*g)->nodes.size() >= kMaxNodesPerGraph) return cudaErrorInvalidValue;
  if (read_deps(**g, deps, &n->deps) != cudaSuccess) {
    spdlog::debug("[reference-executor] {}: a dependency is not a node of graph {:#x} (vm={})", call, graph_id,
                  ctx.vm_id);
    return cudaErrorInvalidValue;
  }
  return cudaSuccess;
}

cudaError_t reference_session::on_vgpuGraphAddKernelNode(call_context& ctx, uint64_t* node_id, uint64_t graph_id,
                                                         const_bytes deps, uint64_t function, uint32_t gridX,
                                                         uint32_t gridY, uint32_t gridZ, uint32_t blockX,
                                                         uint32_t blockY, uint32_t blockZ, uint32_t sharedMem,
                                                         const_bytes params) {
  auto& gs = graphs();
  graph* g = nullptr;
  node n;
  if (cudaError_t st = gs.prepare(graph_id, deps, &g, &n, ctx, "vgpuGraphAddKernelNode"); st != cudaSuccess)
    return st;
  const function_state* f = functions_.find(function);
  if (!f) return cudaErrorInvalidDeviceFunction;
  if (params.size != kernel_of(*f).param_bytes) return cudaErrorInvalidValue;
  if (!gridX || !gridY || !gridZ || !blockX || !blockY || !blockZ) return cudaErrorInvalidConfiguration;
  n.type = cudaGraphNodeTypeKernel;
  n.function = function;
  n.launch = launch_record_header{{gridX, gridY, gridZ}, {blockX, blockY, blockZ}, {0, 0, 0}, sharedMem, 0, 0, 0, 0, 0};
  n.params.assign(params.data, params.data + params.size);
  *node_id = gs.append(graph_id, *g, std::move(n));
  return cudaSuccess;
}

cudaError_t reference_session::on_vgpuGraphAddMemsetNode(call_context& ctx, uint64_t* node_id, uint64_t graph_id,
                                                         const_bytes deps, uint64_t dst, uint64_t pitch,
                                                         uint32_t value, uint32_t elementSize, uint64_t width,
                                                         uint64_t height) {
  auto& gs = graphs();
  graph* g = nullptr;
  node n;
  if (cudaError_t st = gs.prepare(graph_id, deps, &g, &n, ctx, "vgpuGraphAddMemsetNode"); st != cudaSuccess)
    return st;
  if ((elementSize != 1 && elementSize != 2 && elementSize != 4) || width == 0 || height == 0 ||
      width > (uint64_t{1} << 40) / elementSize || height > (uint64_t{1} << 20))
    return cudaErrorInvalidValue;
  const uint64_t row = width * elementSize;
  if (height > 1 && pitch < row) return cudaErrorInvalidValue;
  // Every row must lie in memory the session owns (checked again at each launch:
  // the memory may be freed in between).
  for (uint64_t r = 0; r < height; ++r)
    if (cudaError_t st = check_range("vgpuGraphAddMemsetNode", ctx, dst + r * pitch, row); st != cudaSuccess)
      return st;
  n.type = cudaGraphNodeTypeMemset;
  n.dst = dst;
  n.pitch = height > 1 ? pitch : row;
  n.value = value;
  n.element_size = elementSize;
  n.width = width;
  n.height = height;
  *node_id = gs.append(graph_id, *g, std::move(n));
  return cudaSuccess;
}

cudaError_t reference_session::on_vgpuGraphAddMemcpyNode(call_context& ctx, uint64_t* node_id, uint64_t graph_id,
                                                         const_bytes deps, uint64_t dst, uint64_t src,
                                                         uint64_t count) {
  auto& gs = graphs();
  graph* g = nullptr;
  node n;
  if (cudaError_t st = gs.prepare(graph_id, deps, &g, &n, ctx, "vgpuGraphAddMemcpyNode"); st != cudaSuccess)
    return st;
  if (count != 0) {
    if (cudaError_t st = check_range("vgpuGraphAddMemcpyNode", ctx, src, count); st != cudaSuccess) return st;
    if (cudaError_t st = check_range("vgpuGraphAddMemcpyNode", ctx, dst, count); st != cudaSuccess) return st;
  }
  n.type = cudaGraphNodeTypeMemcpy;
  n.dst = dst;
  n.src = src;
  n.count = count;
  *node_id = gs.append(graph_id, *g, std::move(n));
  return cudaSuccess;
}

cudaError_t reference_session::on_vgpuGraphAddEmptyNode(call_context& ctx, uint64_t* node_id, uint64_t graph_id,
                                                        const_bytes deps) {
  auto& gs = graphs();
  graph* g = nullptr;
  node n;
  if (cudaError_t st = gs.prepare(graph_id, deps, &g, &n, ctx, "vgpuGraphAddEmptyNode"); st != cudaSuccess)
    return st;
  n.type = cudaGraphNodeTypeEmpty;
  *node_id = gs.append(graph_id, *g, std::move(n));
  return cudaSuccess;
}

cudaError_t reference_session::on_vgpuGraphAddHostNode(call_context& ctx, uint64_t* node_id, uint64_t graph_id,
                                                       const_bytes deps, uint64_t token) {
  auto& gs = graphs();
  graph* g = nullptr;
  node n;
  if (cudaError_t st = gs.prepare(graph_id, deps, &g, &n, ctx, "vgpuGraphAddHostNode"); st != cudaSuccess)
    return st;
  n.type = cudaGraphNodeTypeHost;
  n.token = token;
  *node_id = gs.append(graph_id, *g, std::move(n));
  return cudaSuccess;
}

cudaError_t reference_session::on_vgpuGraphAddEventNode(call_context& ctx, uint64_t* node_id, uint64_t graph_id,
                                                        const_bytes deps, uint64_t event, uint32_t wait) {
  auto& gs = graphs();
  graph* g = nullptr;
  node n;
  if (cudaError_t st = gs.prepare(graph_id, deps, &g, &n, ctx, "vgpuGraphAddEventNode"); st != cudaSuccess)
    return st;
  if (!events_.find(event)) return cudaErrorInvalidResourceHandle;
  if (wait > 1) return cudaErrorInvalidValue;
  n.type = wait ? cudaGraphNodeTypeWaitEvent : cudaGraphNodeTypeEventRecord;
  n.event = event;
  *node_id = gs.append(graph_id, *g, std::move(n));
  return cudaSuccess;
}

cudaError_t reference_session::on_vgpuGraphAddChildGraphNode(call_context& ctx, uint64_t* node_id,
                                                             uint64_t graph_id, const_bytes deps, uint64_t child) {
  auto& gs = graphs();
  graph* g = nullptr;
  node n;
  if (cudaError_t st = gs.prepare(graph_id, deps, &g, &n, ctx, "vgpuGraphAddChildGraphNode"); st != cudaSuccess)
    return st;
  graph* c = gs.find_graph(child);
  if (!c || child == graph_id) return no_such("vgpuGraphAddChildGraphNode", "graph", child, ctx);
  if (c->capturing) return cudaErrorInvalidValue;
  n.type = cudaGraphNodeTypeGraph;
  n.child = std::make_shared<const graph>(*c);  // CUDA clones the child: later changes do not reach the node
  *node_id = gs.append(graph_id, *g, std::move(n));
  return cudaSuccess;
}

cudaError_t reference_session::on_vgpuGraphAddDependencies(call_context& ctx, uint64_t graph_id, const_bytes edges) {
  auto& gs = graphs();
  graph* g = gs.find_graph(graph_id);
  if (!g) return no_such("vgpuGraphAddDependencies", "graph", graph_id, ctx);
  if (edges.size % 16 != 0) return cudaErrorInvalidValue;
  std::vector<uint64_t> e(edges.size / 8);
  if (!e.empty()) std::memcpy(e.data(), edges.data, edges.size);
  for (size_t i = 0; i < e.size(); i += 2)
    if (!g->index.count(e[i]) || !g->index.count(e[i + 1]) || e[i] == e[i + 1]) return cudaErrorInvalidValue;
  for (size_t i = 0; i < e.size(); i += 2) {
    // Replay runs nodes in list order; an edge that points backwards would
    // need a reorder, which the reference executor does not do.
    if (g->index.at(e[i]) > g->index.at(e[i + 1])) return cudaErrorNotSupported;
    node& to = g->nodes[g->index.at(e[i + 1])];
    if (std::find(to.deps.begin(), to.deps.end(), e[i]) == to.deps.end()) to.deps.push_back(e[i]);
  }
  return cudaSuccess;
}

cudaError_t reference_session::on_vgpuGraphGetNodes(call_context& ctx, uint64_t graph_id, uint32_t rootsOnly,
                                                    mut_bytes nodes, uint64_t* count) {
  auto& gs = graphs();
  graph* g = gs.find_graph(graph_id);
  if (!g) return no_such("vgpuGraphGetNodes", "graph", graph_id, ctx);
  uint64_t n = 0;
  for (const node& x : g->nodes) {
    if (rootsOnly && !x.deps.empty()) continue;
    if ((n + 1) * 8 <= nodes.size) std::memcpy(nodes.data + n * 8, &x.id, 8);
    ++n;
  }
  *count = n;
  return cudaSuccess;
}

cudaError_t reference_session::on_vgpuGraphNodeGetType(call_context& ctx, uint64_t node_id, int32_t* type) {
  node* n = graphs().find_node(node_id);
  if (!n) return no_such("vgpuGraphNodeGetType", "node", node_id, ctx);
  *type = n->type;
  return cudaSuccess;
}

cudaError_t reference_session::on_vgpuGraphKernelNodeGetParams(call_context& ctx, uint64_t node_id,
                                                               uint64_t* graph_id, uint64_t* function, uint32_t* gridX, uint32_t* gridY,
                                                               uint32_t* gridZ, uint32_t* blockX, uint32_t* blockY,
                                                               uint32_t* blockZ, uint32_t* sharedMem,
                                                               mut_bytes params, uint32_t* paramBytes) {
  node* n = graphs().find_node(node_id);
  if (!n) return no_such("vgpuGraphKernelNodeGetParams", "node", node_id, ctx);
  if (n->type != cudaGraphNodeTypeKernel) return cudaErrorInvalidValue;
  if (params.size < n->params.size()) return cudaErrorInvalidValue;
  *graph_id = graphs().node_graph.at(node_id);
  *function = n->function;
  *gridX = n->launch.grid[0];
  *gridY = n->launch.grid[1];
  *gridZ = n->launch.grid[2];
  *blockX = n->launch.block[0];
  *blockY = n->launch.block[1];
  *blockZ = n->launch.block[2];
  *sharedMem = n->launch.shared_mem;
  if (!n->params.empty()) std::memcpy(params.data, n->params.data(), n->params.size());
  *paramBytes = static_cast<uint32_t>(n->params.size());
  return cudaSuccess;
}

cudaError_t reference_session::on_vgpuGraphKernelNodeSetParams(call_context& ctx, uint64_t exec_id, uint64_t node_id,
                                                               uint64_t function, uint32_t gridX, uint32_t gridY,
                                                               uint32_t gridZ, uint32_t blockX, uint32_t blockY,
                                                               uint32_t blockZ, uint32_t sharedMem,
                                                               const_bytes params) {
  auto& gs = graphs();
  node* n = nullptr;
  if (exec_id == 0) {
    n = gs.find_node(node_id);
  } else {
    auto e = gs.execs.find(exec_id);
    if (e == gs.execs.end()) return no_such("vgpuGraphKernelNodeSetParams", "exec", exec_id, ctx);
    auto at = e->second.g.index.find(node_id);
    if (at != e->second.g.index.end()) n = &e->second.g.nodes[at->second];
  }
  if (!n) return no_such("vgpuGraphKernelNodeSetParams", "node", node_id, ctx);
  if (n->type != cudaGraphNodeTypeKernel) return cudaErrorInvalidValue;
  const function_state* f = functions_.find(function);
  if (!f) return cudaErrorInvalidDeviceFunction;
  if (params.size != kernel_of(*f).param_bytes) return cudaErrorInvalidValue;
  if (!gridX || !gridY || !gridZ || !blockX || !blockY || !blockZ) return cudaErrorInvalidConfiguration;
  n->function = function;
  n->launch.grid[0] = gridX;
  n->launch.grid[1] = gridY;
  n->launch.grid[2] = gridZ;
  n->launch.block[0] = blockX;
  n->launch.block[1] = blockY;
  n->launch.block[2] = blockZ;
  n->launch.shared_mem = sharedMem;
  n->params.assign(params.data, params.data + params.size);
  return cudaSuccess;
}

// --- executable graphs ------------------------------------------------------------

cudaError_t reference_session::on_vgpuGraphInstantiate(call_context& ctx, uint64_t* exec_id, uint64_t graph_id,
                                                       uint64_t flags) {
  auto& gs = graphs();
  graph* g = gs.find_graph(graph_id);
  if (!g) return no_such("vgpuGraphInstantiate", "graph", graph_id, ctx);
  constexpr uint64_t kKnown = cudaGraphInstantiateFlagAutoFreeOnLaunch | cudaGraphInstantiateFlagUpload |
                              cudaGraphInstantiateFlagDeviceLaunch | cudaGraphInstantiateFlagUseNodePriority;
  if ((flags & ~kKnown) != 0 || g->capturing) return cudaErrorInvalidValue;
  exec e;
  e.g = *g;
  *exec_id = gs.issue();
  gs.execs.emplace(*exec_id, std::move(e));
  return cudaSuccess;
}

cudaError_t reference_session::on_vgpuGraphExecDestroy(call_context& ctx, uint64_t exec_id) {
  if (!graphs().execs.erase(exec_id)) return no_such("vgpuGraphExecDestroy", "exec", exec_id, ctx);
  return cudaSuccess;
}

cudaError_t reference_session::on_vgpuGraphExecUpdate(call_context& ctx, uint64_t exec_id, uint64_t graph_id,
                                                      int32_t* result, uint64_t* errorNode) {
  auto& gs = graphs();
  *result = cudaGraphExecUpdateError;
  *errorNode = 0;
  auto e = gs.execs.find(exec_id);
  if (e == gs.execs.end()) return no_such("vgpuGraphExecUpdate", "exec", exec_id, ctx);
  graph* g = gs.find_graph(graph_id);
  if (!g) return no_such("vgpuGraphExecUpdate", "graph", graph_id, ctx);
  graph& old = e->second.g;
  // The same topology: the same number of nodes, position by position of the
  // same type with dependencies at the same positions.
  if (g->nodes.size() != old.nodes.size()) {
    *result = cudaGraphExecUpdateErrorTopologyChanged;
    return cudaSuccess;
  }
  for (size_t i = 0; i < g->nodes.size(); ++i) {
    const node& a = old.nodes[i];
    const node& b = g->nodes[i];
    bool same = a.type == b.type && a.deps.size() == b.deps.size();
    for (size_t d = 0; same && d < a.deps.size(); ++d) same = old.index.at(a.deps[d]) == g->index.at(b.deps[d]);
    if (!same) {
      *result = a.type == b.type ? cudaGraphExecUpdateErrorTopologyChanged : cudaGraphExecUpdateErrorNodeTypeChanged;
      *errorNode = b.id;
      return cudaSuccess;
    }
  }
  // Take the new parameters; the exec answers to the new graph's node ids too.
  for (size_t i = 0; i < g->nodes.size(); ++i) {
    const uint64_t keep_id = old.nodes[i].id;
    std::vector<uint64_t> keep_deps = old.nodes[i].deps;
    old.nodes[i] = g->nodes[i];
    old.nodes[i].id = keep_id;
    old.nodes[i].deps = std::move(keep_deps);
    old.index[g->nodes[i].id] = i;
  }
  *result = cudaGraphExecUpdateSuccess;
  return cudaSuccess;
}

cudaError_t reference_session::on_vgpuGraphUpload(call_context& ctx, uint64_t exec_id, uint64_t stream) {
  if (!graphs().execs.count(exec_id)) return no_such("vgpuGraphUpload", "exec", exec_id, ctx);
  return stream_ok(stream) ? cudaSuccess : cudaErrorInvalidResourceHandle;
}

namespace {
constexpr int kMaxChildDepth = 16;
}

cudaError_t reference_session::on_vgpuGraphLaunch(call_context& ctx, uint64_t exec_id, uint64_t stream) {
  auto& gs = graphs();
  auto e = gs.execs.find(exec_id);
  if (e == gs.execs.end()) return no_such("vgpuGraphLaunch", "exec", exec_id, ctx);
  if (!stream_ok(stream)) return cudaErrorInvalidResourceHandle;
  // Launched into a capture: refused and the capture invalidated, as NVIDIA's
  // runtime does (CUDA 13, H100) and so the cuda executor's driver.
  if (cudaError_t st = capture_refuses(stream, "vgpuGraphLaunch"); st != cudaSuccess) return st;
  // Replays a graph in list order (a topological order) on `stream`. The
  // graph is copied first: a host node's guest may change the session's
  // graphs only through later calls, but a handler below must not see the
  // list it walks move.
  struct replay {
    reference_session& s;
    call_context& ctx;
    uint64_t stream;
    cudaError_t run(const graph& g, int depth) {
      if (depth > kMaxChildDepth) return cudaErrorInvalidValue;
      for (const node& n : g.nodes) {
        cudaError_t st = cudaSuccess;
        switch (n.type) {
          case cudaGraphNodeTypeKernel:
            st = s.on_vgpuLaunchKernel(ctx, n.function, n.launch.grid[0], n.launch.grid[1], n.launch.grid[2],
                                       n.launch.block[0], n.launch.block[1], n.launch.block[2], n.launch.shared_mem,
                                       stream, n.launch.cluster[0], n.launch.cluster[1], n.launch.cluster[2],
                                       n.launch.launch_flags, const_bytes{n.params.data(), n.params.size()});
            break;
          case cudaGraphNodeTypeMemset:
            st = s.graph_memset(ctx, n.dst, n.pitch, n.value, n.element_size, n.width, n.height);
            break;
          case cudaGraphNodeTypeMemcpy:
            st = s.on_vgpuMemcpyDtoD(ctx, n.dst, n.src, n.count, stream, kAsyncFlag);
            break;
          case cudaGraphNodeTypeHost:
            st = s.on_vgpuHostFunc(ctx, stream, n.token);
            break;
          case cudaGraphNodeTypeEventRecord:
            st = s.on_cudaEventRecord(ctx, n.event, stream);
            break;
          case cudaGraphNodeTypeGraph:
            st = run(*n.child, depth + 1);
            break;
          default:  // empty and event-wait nodes: ordering only, already given
            break;
        }
        if (st != cudaSuccess) return st;
      }
      return cudaSuccess;
    }
  };
  const graph g = e->second.g;
  return replay{*this, ctx, stream}.run(g, 0);
}

// A memset node: `height` rows of `width` elements of `element_size` bytes.
cudaError_t reference_session::graph_memset(call_context& ctx, uint64_t dst, uint64_t pitch, uint32_t value,
                                            uint32_t element_size, uint64_t width, uint64_t height) {
  const uint64_t row = width * element_size;
  for (uint64_t r = 0; r < height; ++r)
    if (cudaError_t st = check_range("vgpuGraphLaunch(memset)", ctx, dst + r * pitch, row); st != cudaSuccess)
      return st;
  for (uint64_t r = 0; r < height; ++r) {
    uint8_t* p = host_at(dst + r * pitch);
    if (element_size == 1) {
      std::memset(p, static_cast<uint8_t>(value), row);
      continue;
    }
    for (uint64_t i = 0; i < width; ++i) std::memcpy(p + i * element_size, &value, element_size);  // little endian
  }
  return cudaSuccess;
}

}  // namespace vgpu::host::reference
