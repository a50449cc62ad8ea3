// Explicit graphs and executable graphs in the guest: every node, graph and
// exec lives on the host (the cuda executor holds real CUgraph objects); the
// guest passes ids. Kernel nodes are in graph_kernel_node.cpp.
#include <cstring>
#include <vector>

#include <cuda_runtime_api.h>

#include "api_wire.h"
#include "guest_remote.h"
#include "shim/cudart/capture_state.h"
#include "shim/cudart/device_ranges.h"
#include "shim/cudart/graph_call.h"
#include "shim/cudart/graph_handles.h"
#include "shim/cudart/host_func.h"
#include "shim/cudart/last_error.h"
#include "shim/transport/guest_call.h"

using namespace vgpu;
using namespace vgpu::shim;
using protocol::call_id;

namespace {

constexpr size_t kMaxDeps = 1 << 16;

cudaError_t deps_of(const cudaGraphNode_t* deps, size_t n, std::vector<uint64_t>* out) {
  if (n && !deps) return cudaErrorInvalidValue;
  if (n > kMaxDeps) return cudaErrorInvalidValue;
  out->resize(n);
  for (size_t i = 0; i < n; ++i) {
    if (!deps[i]) return cudaErrorInvalidValue;
    (*out)[i] = id_of(deps[i]);
  }
  return cudaSuccess;
}

// Sends an add-node request whose first data field is `deps`; sets *pNode.
template <typename Req>
cudaError_t add_node(call_id id, Req& req, cudaGraphNode_t* pNode, cudaGraph_t graph, const cudaGraphNode_t* deps,
                     size_t n) {
  if (!pNode || !graph) return cudaErrorInvalidValue;
  std::vector<uint64_t> d;
  if (cudaError_t st = deps_of(deps, n, &d); st != cudaSuccess) return st;
  req.graph = id_of(graph);
  struct rep_t {
    uint64_t node;
    static constexpr uint32_t wire_size() { return sizeof(uint64_t); }
  } rep{};
  const cudaError_t st = data_call(id, req, &rep, &req.deps, d.data(), d.size() * 8);
  if (st == cudaSuccess) *pNode = handle_of<cudaGraphNode_t>(rep.node);
  return st;
}

cudaError_t copy_node(cudaGraphNode_t* pNode, cudaGraph_t graph, const cudaGraphNode_t* deps, size_t n, void* dst,
                      const void* src, size_t count, cudaMemcpyKind kind) {
  // Only device memory: a node that reads or writes guest host memory would
  // need that memory at every launch, which the host cannot reach.
  const bool dd = is_device_pointer(dst) && is_device_pointer(src);
  if (!dd) return cudaErrorNotSupported;
  if (kind != cudaMemcpyDeviceToDevice && kind != cudaMemcpyDefault) return cudaErrorInvalidValue;
  wire::vgpuGraphAddMemcpyNode_req req{};
  req.dst = reinterpret_cast<uint64_t>(dst);
  req.src = reinterpret_cast<uint64_t>(src);
  req.count = count;
  return add_node(call_id::vgpuGraphAddMemcpyNode, req, pNode, graph, deps, n);
}

cudaError_t get_nodes(cudaGraph_t graph, cudaGraphNode_t* nodes, size_t* num, bool roots) {
  if (!graph || !num) return cudaErrorInvalidValue;
  const size_t cap = nodes ? *num : 0;
  if (cap > kMaxDeps) return cudaErrorInvalidValue;
  wire::vgpuGraphGetNodes_req req{};
  req.graph = id_of(graph);
  req.rootsOnly = roots ? 1 : 0;
  wire::vgpuGraphGetNodes_rep rep{};
  std::vector<uint64_t> ids(cap);
  const cudaError_t st = data_call(call_id::vgpuGraphGetNodes, req, &rep, nullptr, nullptr, 0, &req.nodes,
                                   ids.data(), cap * 8);
  if (st != cudaSuccess) return st;
  for (size_t i = 0; i < cap && i < rep.count; ++i) nodes[i] = handle_of<cudaGraphNode_t>(ids[i]);
  // CUDA: with an array, *num becomes how many were written; without, how many exist.
  *num = nodes ? std::min<size_t>(cap, rep.count) : rep.count;
  return cudaSuccess;
}

cudaStream_t per_thread(cudaStream_t s) { return s ? s : cudaStreamPerThread; }

}  // namespace

extern "C" cudaError_t cudaGraphCreate(cudaGraph_t* pGraph, unsigned int flags) {
  if (!pGraph || flags != 0) return finish(cudaErrorInvalidValue);
  unsigned long long id = 0;
  const cudaError_t st = remote::vgpuGraphCreate(&id, flags);
  if (st == cudaSuccess) *pGraph = handle_of<cudaGraph_t>(id);
  return finish(st);
}

extern "C" cudaError_t cudaGraphDestroy(cudaGraph_t graph) {
  if (!graph) return finish(cudaErrorInvalidValue);
  const cudaError_t st = remote::vgpuGraphDestroy(id_of(graph));
  if (st == cudaSuccess) forget_graph_nodes(id_of(graph));
  return finish(st);
}

extern "C" cudaError_t cudaGraphClone(cudaGraph_t* pGraphClone, cudaGraph_t originalGraph) {
  if (!pGraphClone || !originalGraph) return finish(cudaErrorInvalidValue);
  unsigned long long id = 0;
  const cudaError_t st = remote::vgpuGraphClone(&id, id_of(originalGraph));
  if (st == cudaSuccess) *pGraphClone = handle_of<cudaGraph_t>(id);
  return finish(st);
}

extern "C" cudaError_t cudaGraphAddMemsetNode(cudaGraphNode_t* pGraphNode, cudaGraph_t graph,
                                              const cudaGraphNode_t* pDependencies, size_t numDependencies,
                                              const cudaMemsetParams* p) {
  if (!p) return finish(cudaErrorInvalidValue);
  wire::vgpuGraphAddMemsetNode_req req{};
  req.dst = reinterpret_cast<uint64_t>(p->dst);
  req.pitch = p->pitch;
  req.value = p->value;
  req.elementSize = p->elementSize;
  req.width = p->width;
  req.height = p->height;
  return finish(add_node(call_id::vgpuGraphAddMemsetNode, req, pGraphNode, graph, pDependencies, numDependencies));
}

extern "C" cudaError_t cudaGraphAddMemcpyNode1D(cudaGraphNode_t* pGraphNode, cudaGraph_t graph,
                                                const cudaGraphNode_t* pDependencies, size_t numDependencies,
                                                void* dst, const void* src, size_t count, cudaMemcpyKind kind) {
  return finish(copy_node(pGraphNode, graph, pDependencies, numDependencies, dst, src, count, kind));
}

extern "C" cudaError_t cudaGraphAddMemcpyNode(cudaGraphNode_t* pGraphNode, cudaGraph_t graph,
                                              const cudaGraphNode_t* pDependencies, size_t numDependencies,
                                              const cudaMemcpy3DParms* p) {
  if (!p) return finish(cudaErrorInvalidValue);
  // Linear device memory, one row: what a 1D copy expressed in 3D looks like.
  if (p->srcArray || p->dstArray || p->extent.height > 1 || p->extent.depth > 1 || p->srcPos.y || p->srcPos.z ||
      p->dstPos.y || p->dstPos.z)
    return finish(cudaErrorNotSupported);
  auto* dst = static_cast<char*>(p->dstPtr.ptr) + p->dstPos.x;
  auto* src = static_cast<const char*>(p->srcPtr.ptr) + p->srcPos.x;
  return finish(copy_node(pGraphNode, graph, pDependencies, numDependencies, dst, src, p->extent.width, p->kind));
}

extern "C" cudaError_t cudaGraphAddEmptyNode(cudaGraphNode_t* pGraphNode, cudaGraph_t graph,
                                             const cudaGraphNode_t* pDependencies, size_t numDependencies) {
  wire::vgpuGraphAddEmptyNode_req req{};
  return finish(add_node(call_id::vgpuGraphAddEmptyNode, req, pGraphNode, graph, pDependencies, numDependencies));
}

extern "C" cudaError_t cudaGraphAddHostNode(cudaGraphNode_t* pGraphNode, cudaGraph_t graph,
                                            const cudaGraphNode_t* pDependencies, size_t numDependencies,
                                            const cudaHostNodeParams* p) {
  if (!p || !p->fn) return finish(cudaErrorInvalidValue);
  wire::vgpuGraphAddHostNode_req req{};
  uint64_t token = 0;
  if (cudaError_t st = graph_host_token(p->fn, p->userData, &token); st != cudaSuccess) return finish(st);
  req.token = token;
  return finish(add_node(call_id::vgpuGraphAddHostNode, req, pGraphNode, graph, pDependencies, numDependencies));
}

extern "C" cudaError_t cudaGraphAddEventRecordNode(cudaGraphNode_t* pGraphNode, cudaGraph_t graph,
                                                   const cudaGraphNode_t* pDependencies, size_t numDependencies,
                                                   cudaEvent_t event) {
  wire::vgpuGraphAddEventNode_req req{};
  req.event = reinterpret_cast<uint64_t>(event);
  req.wait = 0;
  return finish(add_node(call_id::vgpuGraphAddEventNode, req, pGraphNode, graph, pDependencies, numDependencies));
}

extern "C" cudaError_t cudaGraphAddEventWaitNode(cudaGraphNode_t* pGraphNode, cudaGraph_t graph,
                                                 const cudaGraphNode_t* pDependencies, size_t numDependencies,
                                                 cudaEvent_t event) {
  wire::vgpuGraphAddEventNode_req req{};
  req.event = reinterpret_cast<uint64_t>(event);
  req.wait = 1;
  return finish(add_node(call_id::vgpuGraphAddEventNode, req, pGraphNode, graph, pDependencies, numDependencies));
}

extern "C" cudaError_t cudaGraphAddChildGraphNode(cudaGraphNode_t* pGraphNode, cudaGraph_t graph,
                                                  const cudaGraphNode_t* pDependencies, size_t numDependencies,
                                                  cudaGraph_t childGraph) {
  if (!childGraph) return finish(cudaErrorInvalidValue);
  wire::vgpuGraphAddChildGraphNode_req req{};
  req.child = id_of(childGraph);
  return finish(add_node(call_id::vgpuGraphAddChildGraphNode, req, pGraphNode, graph, pDependencies, numDependencies));
}

extern "C" cudaError_t cudaGraphAddDependencies(cudaGraph_t graph, const cudaGraphNode_t* from,
                                                const cudaGraphNode_t* to, const cudaGraphEdgeData* edgeData,
                                                size_t numDependencies) {
  if (!graph || (numDependencies && (!from || !to)) || numDependencies > kMaxDeps) return finish(cudaErrorInvalidValue);
  // Only default edges (full completion); programmatic edges are not carried.
  if (edgeData)
    for (size_t i = 0; i < numDependencies; ++i)
      if (edgeData[i].type != cudaGraphDependencyTypeDefault || edgeData[i].from_port || edgeData[i].to_port)
        return finish(cudaErrorNotSupported);
  std::vector<uint64_t> edges(2 * numDependencies);
  for (size_t i = 0; i < numDependencies; ++i) {
    edges[2 * i] = id_of(from[i]);
    edges[2 * i + 1] = id_of(to[i]);
  }
  wire::vgpuGraphAddDependencies_req req{};
  req.graph = id_of(graph);
  struct none {
    static constexpr uint32_t wire_size() { return 0; }
  } rep;
  return finish(data_call(call_id::vgpuGraphAddDependencies, req, &rep, &req.edges, edges.data(), edges.size() * 8));
}

extern "C" cudaError_t cudaGraphGetNodes(cudaGraph_t graph, cudaGraphNode_t* nodes, size_t* numNodes) {
  return finish(get_nodes(graph, nodes, numNodes, false));
}

extern "C" cudaError_t cudaGraphGetRootNodes(cudaGraph_t graph, cudaGraphNode_t* pRootNodes, size_t* pNumRootNodes) {
  return finish(get_nodes(graph, pRootNodes, pNumRootNodes, true));
}

extern "C" cudaError_t cudaGraphNodeGetType(cudaGraphNode_t node, cudaGraphNodeType* pType) {
  if (!node || !pType) return finish(cudaErrorInvalidValue);
  int type = 0;
  const cudaError_t st = remote::vgpuGraphNodeGetType(id_of(node), &type);
  if (st == cudaSuccess) *pType = static_cast<cudaGraphNodeType>(type);
  return finish(st);
}

extern "C" cudaError_t cudaGraphInstantiate(cudaGraphExec_t* pGraphExec, cudaGraph_t graph, unsigned long long flags) {
  if (!pGraphExec || !graph) return finish(cudaErrorInvalidValue);
  unsigned long long id = 0;
  const cudaError_t st = remote::vgpuGraphInstantiate(&id, id_of(graph), flags);
  if (st == cudaSuccess) *pGraphExec = handle_of<cudaGraphExec_t>(id);
  return finish(st);
}

extern "C" cudaError_t cudaGraphInstantiateWithFlags(cudaGraphExec_t* pGraphExec, cudaGraph_t graph,
                                                     unsigned long long flags) {
  return cudaGraphInstantiate(pGraphExec, graph, flags);
}

extern "C" cudaError_t cudaGraphLaunch(cudaGraphExec_t graphExec, cudaStream_t stream) {
  if (!graphExec) return finish(cudaErrorInvalidValue);
  // NVIDIA's runtime (CUDA 13, H100) refuses a graph launched into a
  // capturing stream with cudaErrorStreamCaptureUnsupported and invalidates
  // the capture; answered here, before anything is posted, so the refusal is
  // the launch's own and not a deferred error of a later call.
  if (cudaError_t refused = refuse_in_capture(stream); refused != cudaSuccess) return finish(refused);
  return finish(remote::vgpuGraphLaunch(id_of(graphExec), stream));  // posted: one ring entry, no wait
}

extern "C" cudaError_t cudaGraphLaunch_ptsz(cudaGraphExec_t graphExec, cudaStream_t stream) {
  return cudaGraphLaunch(graphExec, per_thread(stream));
}

extern "C" cudaError_t cudaGraphUpload(cudaGraphExec_t graphExec, cudaStream_t stream) {
  if (!graphExec) return finish(cudaErrorInvalidValue);
  return finish(remote::vgpuGraphUpload(id_of(graphExec), stream));
}

extern "C" cudaError_t cudaGraphUpload_ptsz(cudaGraphExec_t graphExec, cudaStream_t stream) {
  return cudaGraphUpload(graphExec, per_thread(stream));
}

extern "C" cudaError_t cudaGraphExecDestroy(cudaGraphExec_t graphExec) {
  if (!graphExec) return finish(cudaErrorInvalidValue);
  return finish(remote::vgpuGraphExecDestroy(id_of(graphExec)));
}

extern "C" cudaError_t cudaGraphExecUpdate(cudaGraphExec_t hGraphExec, cudaGraph_t hGraph,
                                           cudaGraphExecUpdateResultInfo* resultInfo) {
  if (!hGraphExec || !hGraph) return finish(cudaErrorInvalidValue);
  int result = 0;
  unsigned long long node = 0;
  // The host answers success with the verdict in `result`, so the verdict
  // comes back even when the update is refused.
  cudaError_t st = remote::vgpuGraphExecUpdate(id_of(hGraphExec), id_of(hGraph), &result, &node);
  if (st == cudaSuccess && result != cudaGraphExecUpdateSuccess) st = cudaErrorGraphExecUpdateFailure;
  if (resultInfo) {
    resultInfo->result = static_cast<cudaGraphExecUpdateResult>(result);
    resultInfo->errorNode = handle_of<cudaGraphNode_t>(node);
    resultInfo->errorFromNode = nullptr;
  }
  return finish(st);
}
