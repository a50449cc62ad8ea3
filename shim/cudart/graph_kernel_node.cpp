// Kernel nodes in the guest: adding one, and reading and rewriting its
// parameters (what llama.cpp does on every token: GetParams, compare `func`
// with its own kernel, rewrite one argument through kernelParams[i], then
// cudaGraphExecKernelNodeSetParams). The host keeps the packed parameter
// block; the guest keeps, per node, a mirror of it split by the kernel's
// layout, and kernelParams points into that mirror for as long as the node
// exists (its storage is reused, never moved, while the function stays).
#include <cstring>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <vector>

#include <cuda_runtime_api.h>

#include "api_wire.h"
#include "guest_remote.h"
#include "shim/cudart/graph_call.h"
#include "shim/cudart/graph_handles.h"
#include "shim/cudart/last_error.h"
#include "shim/cudart/registry.h"

using namespace vgpu;
using namespace vgpu::shim;
using protocol::call_id;

namespace {

constexpr uint32_t kMaxParamBlock = 32764;

struct node_mirror {
  uint64_t graph = 0;  // 0 while unknown (nodes first seen through GetParams)
  uint64_t function = 0;
  std::unique_ptr<uint8_t[]> bytes;
  std::vector<void*> args;  // kernelParams: pointers into bytes
};

struct mirrors {
  std::mutex mutex;
  std::unordered_map<uint64_t, node_mirror> nodes;
  // function id -> (host stub, entry): GetParams asks for every node on
  // every token, the registry would be scanned each time.
  std::unordered_map<uint64_t, std::pair<const void*, kernel_entry*>> functions;
};

mirrors& state() {
  static auto* m = new mirrors;
  return *m;
}

std::pair<const void*, kernel_entry*> function_of(uint64_t id) {
  auto& m = state();
  auto it = m.functions.find(id);
  if (it != m.functions.end()) return it->second;
  kernel_entry* k = nullptr;
  const void* stub = host_function_of(id, &k);
  if (stub) m.functions.emplace(id, std::make_pair(stub, k));
  return {stub, k};
}

// Packs kernelParams by the kernel's layout, as a launch does.
cudaError_t pack(const cudaKernelNodeParams* p, kernel_entry** out, std::vector<uint8_t>* block) {
  if (!p || !p->func) return cudaErrorInvalidValue;
  if (p->extra) return cudaErrorNotSupported;  // the `extra` form is not carried
  kernel_entry* k = find_kernel(p->func);
  if (!k) return cudaErrorInvalidDeviceFunction;
  cudaError_t st = cudaSuccess;
  if (!__atomic_load_n(&k->resolved, __ATOMIC_ACQUIRE) && (st = resolve_kernel(k)) != cudaSuccess) return st;
  if (k->param_bytes > kMaxParamBlock || (!p->kernelParams && !k->layout.empty())) return cudaErrorInvalidValue;
  if (p->sharedMemBytes > UINT32_MAX) return cudaErrorInvalidValue;
  block->assign(k->param_bytes, 0);
  for (size_t i = 0; i < k->layout.size(); ++i)
    std::memcpy(block->data() + k->layout[i].first, p->kernelParams[i], k->layout[i].second);
  *out = k;
  return cudaSuccess;
}

template <typename Req>
void geometry(Req& req, const cudaKernelNodeParams* p) {
  req.gridX = p->gridDim.x;
  req.gridY = p->gridDim.y;
  req.gridZ = p->gridDim.z;
  req.blockX = p->blockDim.x;
  req.blockY = p->blockDim.y;
  req.blockZ = p->blockDim.z;
  req.sharedMem = static_cast<uint32_t>(p->sharedMemBytes);
}

cudaError_t add_kernel_node(cudaGraphNode_t* pNode, cudaGraph_t graph, const cudaGraphNode_t* deps, size_t n,
                            const cudaKernelNodeParams* p) {
  if (!pNode || !graph || (n && !deps) || n > (1u << 16)) return cudaErrorInvalidValue;
  kernel_entry* k = nullptr;
  std::vector<uint8_t> block;
  if (cudaError_t st = pack(p, &k, &block); st != cudaSuccess) return st;
  std::vector<uint64_t> d(n);
  for (size_t i = 0; i < n; ++i) d[i] = id_of(deps[i]);
  wire::vgpuGraphAddKernelNode_req req{};
  req.graph = id_of(graph);
  req.function = k->function;
  geometry(req, p);
  wire::vgpuGraphAddKernelNode_rep rep{};
  const cudaError_t st = data_call(call_id::vgpuGraphAddKernelNode, req, &rep, &req.deps, d.data(), n * 8, nullptr,
                                   nullptr, 0, block.data(), static_cast<uint32_t>(block.size()));
  if (st != cudaSuccess) return st;
  *pNode = handle_of<cudaGraphNode_t>(rep.node);
  std::lock_guard<std::mutex> lock(state().mutex);
  state().nodes[rep.node].graph = id_of(graph);
  return cudaSuccess;
}

cudaError_t get_params(cudaGraphNode_t node, cudaKernelNodeParams* p) {
  if (!node || !p) return cudaErrorInvalidValue;
  std::vector<uint8_t> block(kMaxParamBlock + 4);
  wire::vgpuGraphKernelNodeGetParams_req req{};
  req.node = id_of(node);
  wire::vgpuGraphKernelNodeGetParams_rep rep{};
  cudaError_t st = data_call(call_id::vgpuGraphKernelNodeGetParams, req, &rep, nullptr, nullptr, 0, &req.params,
                             block.data(), block.size());
  if (st != cudaSuccess) return st;
  if (rep.paramBytes > block.size()) return cudaErrorInvalidValue;
  *p = cudaKernelNodeParams{};
  p->gridDim = dim3(rep.gridX, rep.gridY, rep.gridZ);
  p->blockDim = dim3(rep.blockX, rep.blockY, rep.blockZ);
  p->sharedMemBytes = rep.sharedMem;
  auto& m = state();
  std::lock_guard<std::mutex> lock(m.mutex);
  const auto [stub, k] = function_of(rep.function);
  // A kernel the program never registered (a library's, cuBLAS's inside a
  // captured GEMM) has no host stub: NVIDIA's runtime answers
  // cudaErrorInvalidDeviceFunction there too, and llama.cpp expects that.
  if (!stub) return cudaErrorInvalidDeviceFunction;
  if (k->param_bytes != rep.paramBytes) return cudaErrorInvalidValue;
  node_mirror& nm = m.nodes[req.node];
  nm.graph = rep.graph;  // cudaGraphDestroy of that graph drops the mirror
  // As NVIDIA's runtime does (seen on the H100, CUDA 13): the array and the
  // values it points to are the node's own storage, filled once. A value
  // written through kernelParams[i] stays in the node (GetParams shows it
  // again), and an entry of the array the caller replaced stays replaced (older
  // llama.cpp puts its own pointer in kernelParams[1] and always rewrites it).
  // cudaGraphKernelNodeSetParams refreshes the values (set_params below).
  if (nm.function != rep.function || !nm.bytes) {
    nm.function = rep.function;
    nm.bytes.reset(new uint8_t[k->param_bytes + 1]);
    nm.args.resize(k->layout.size());
    for (size_t i = 0; i < k->layout.size(); ++i) nm.args[i] = nm.bytes.get() + k->layout[i].first;
    std::memcpy(nm.bytes.get(), block.data(), rep.paramBytes);
  }
  p->func = const_cast<void*>(stub);
  p->kernelParams = nm.args.data();
  return cudaSuccess;
}

cudaError_t set_params(cudaGraphExec_t exec, cudaGraphNode_t node, const cudaKernelNodeParams* p) {
  if (!node) return cudaErrorInvalidValue;
  kernel_entry* k = nullptr;
  std::vector<uint8_t> block;
  if (cudaError_t st = pack(p, &k, &block); st != cudaSuccess) return st;
  wire::vgpuGraphKernelNodeSetParams_req req{};
  req.exec = id_of(exec);
  req.node = id_of(node);
  req.function = k->function;
  geometry(req, p);
  const cudaError_t st = guest_call(static_cast<uint16_t>(call_id::vgpuGraphKernelNodeSetParams), &req,
                                    wire::vgpuGraphKernelNodeSetParams_req::wire_size(), nullptr, 0, 0, block.data(),
                                    static_cast<uint32_t>(block.size()));
  if (st != cudaSuccess || exec) return st;  // an exec's node is not the graph's
  // The graph's node changed: its mirror (what GetParams hands out) follows;
  // a mirror of another function is dropped and refetched on next GetParams.
  auto& m = state();
  std::lock_guard<std::mutex> lock(m.mutex);
  auto it = m.nodes.find(req.node);
  if (it == m.nodes.end() || !it->second.bytes) return st;
  if (it->second.function == k->function && block.size() == k->param_bytes)
    std::memcpy(it->second.bytes.get(), block.data(), block.size());
  else
    it->second.bytes.reset();
  return st;
}

}  // namespace

namespace vgpu::shim {

void forget_graph_nodes(uint64_t graph) {
  auto& m = state();
  std::lock_guard<std::mutex> lock(m.mutex);
  for (auto it = m.nodes.begin(); it != m.nodes.end();) it = it->second.graph == graph ? m.nodes.erase(it) : std::next(it);
}

}  // namespace vgpu::shim

extern "C" cudaError_t cudaGraphAddKernelNode(cudaGraphNode_t* pGraphNode, cudaGraph_t graph,
                                              const cudaGraphNode_t* pDependencies, size_t numDependencies,
                                              const cudaKernelNodeParams* pNodeParams) {
  return finish(add_kernel_node(pGraphNode, graph, pDependencies, numDependencies, pNodeParams));
}

extern "C" cudaError_t cudaGraphKernelNodeGetParams(cudaGraphNode_t node, cudaKernelNodeParams* pNodeParams) {
  return finish(get_params(node, pNodeParams));
}

extern "C" cudaError_t cudaGraphKernelNodeSetParams(cudaGraphNode_t node, const cudaKernelNodeParams* pNodeParams) {
  return finish(set_params(nullptr, node, pNodeParams));
}

extern "C" cudaError_t cudaGraphExecKernelNodeSetParams(cudaGraphExec_t hGraphExec, cudaGraphNode_t node,
                                                        const cudaKernelNodeParams* pNodeParams) {
  if (!hGraphExec) return finish(cudaErrorInvalidValue);
  return finish(set_params(hGraphExec, node, pNodeParams));
}
