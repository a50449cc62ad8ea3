// Kernel launches: what <<<...>>> compiles to (__cudaPushCallConfiguration,
// __cudaGetKernel, __cudaLaunchKernel) and the runtime's launch functions.
// A launch is posted: the guest packs the parameter block by the cached
// layout, puts it in the ring and returns; errors the host finds surface at
// the next synchronising call, as CUDA's asynchronous errors do.
#include <cstring>
#include <vector>

#include <cuda_runtime_api.h>

#include "api_ids.h"
#include "api_wire.h"
#include "guest_remote.h"
#include "shim/cudart/last_error.h"
#include "shim/cudart/registry.h"
#include "shim/transport/guest_call.h"
#include "shim/transport/guest_log.h"
#include "shim/transport/module_calls.h"

namespace vgpu::shim {

namespace {

struct call_config {
  dim3 grid, block;
  size_t shared_mem;
  cudaStream_t stream;
};
thread_local std::vector<call_config> t_configs;  // <<<...>>> nests through argument evaluation

constexpr uint32_t kCooperative = kLaunchCooperative;  // shim/transport/module_calls.h
constexpr uint32_t kProgrammaticSerialization = kLaunchProgrammatic;

struct launch_options {
  dim3 cluster{0, 0, 0};
  uint32_t flags = 0;
};

// Checks the runtime makes before a launch reaches the device, with the
// codes NVIDIA's CUDA 13 runtime gives (measured on the H100: a block of 2048
// threads, grid.y 70000 and block.z 65 are cudaErrorInvalidValue).
cudaError_t check_config(dim3 g, dim3 b) {
  if (!g.x || !g.y || !g.z || !b.x || !b.y || !b.z) return cudaErrorInvalidConfiguration;
  if (uint64_t{b.x} * b.y * b.z > 1024 || b.z > 64 || g.y > 65535 || g.z > 65535) return cudaErrorInvalidValue;
  return cudaSuccess;
}

cudaError_t launch(const void* func, dim3 grid, dim3 block, void** args, size_t shared_mem, cudaStream_t stream,
                   const launch_options& opt) {
  kernel_entry* k = find_kernel(func);
  if (!k) return cudaErrorInvalidDeviceFunction;
  cudaError_t st = check_config(grid, block);
  if (st != cudaSuccess) return st;
  if (!__atomic_load_n(&k->resolved, __ATOMIC_ACQUIRE) && (st = resolve_kernel(k)) != cudaSuccess) return st;
  if (k->param_bytes > kMaxParamBlock || (!args && !k->layout.empty())) return cudaErrorInvalidValue;
  if (shared_mem > UINT32_MAX) return cudaErrorInvalidValue;
  alignas(16) uint8_t params[kMaxParamBlock];
  std::memset(params, 0, k->param_bytes);  // padding between parameters carries no stack bytes
  for (size_t i = 0; i < k->layout.size(); ++i)
    std::memcpy(params + k->layout[i].first, args[i], k->layout[i].second);
  launch_shape shape;
  shape.grid[0] = grid.x;
  shape.grid[1] = grid.y;
  shape.grid[2] = grid.z;
  shape.block[0] = block.x;
  shape.block[1] = block.y;
  shape.block[2] = block.z;
  shape.shared_mem = static_cast<uint32_t>(shared_mem);
  shape.stream = reinterpret_cast<uint64_t>(stream);
  shape.cluster[0] = opt.cluster.x;
  shape.cluster[1] = opt.cluster.y;
  shape.cluster[2] = opt.cluster.z;
  shape.flags = opt.flags;
  return post_launch(k->function, shape, params, k->param_bytes);
}

cudaStream_t per_thread(cudaStream_t s) { return s ? s : cudaStreamPerThread; }

cudaError_t launch_ex(const cudaLaunchConfig_t* config, const void* func, void** args, bool ptsz) {
  if (!config) return cudaErrorInvalidValue;
  launch_options opt;
  for (unsigned i = 0; i < config->numAttrs; ++i) {
    const cudaLaunchAttribute& a = config->attrs[i];
    switch (a.id) {
      case cudaLaunchAttributeClusterDimension:
        opt.cluster = dim3(a.val.clusterDim.x, a.val.clusterDim.y, a.val.clusterDim.z);
        break;
      case cudaLaunchAttributeCooperative:
        if (a.val.cooperative) opt.flags |= kCooperative;
        break;
      case cudaLaunchAttributeProgrammaticStreamSerialization:
        if (a.val.programmaticStreamSerializationAllowed) opt.flags |= kProgrammaticSerialization;
        break;
      default:
        // Scheduling hints (priority, access policy windows, ...) are not
        // carried yet; the launch itself is still correct without them.
        VGPU_GLOG(debug, "[cuda-transport] launch attribute %d ignored", static_cast<int>(a.id));
        break;
    }
  }
  return launch(func, config->gridDim, config->blockDim, args, config->dynamicSmemBytes,
                ptsz ? per_thread(config->stream) : config->stream, opt);
}

}  // namespace

}  // namespace vgpu::shim

using namespace vgpu::shim;

extern "C" unsigned __cudaPushCallConfiguration(dim3 gridDim, dim3 blockDim, size_t sharedMem, void* stream) {
  t_configs.push_back({gridDim, blockDim, sharedMem, static_cast<cudaStream_t>(stream)});
  return 0;
}

extern "C" cudaError_t __cudaPopCallConfiguration(dim3* gridDim, dim3* blockDim, size_t* sharedMem, void* stream) {
  if (t_configs.empty()) return cudaErrorInvalidConfiguration;
  const call_config c = t_configs.back();
  t_configs.pop_back();
  *gridDim = c.grid;
  *blockDim = c.block;
  *sharedMem = c.shared_mem;
  *static_cast<cudaStream_t*>(stream) = c.stream;
  return cudaSuccess;
}

extern "C" cudaError_t __cudaGetKernel(cudaKernel_t* kernel, const void* hostFun) {
  kernel_entry* k = find_kernel(hostFun);
  if (!kernel) return finish(cudaErrorInvalidValue);
  *kernel = reinterpret_cast<cudaKernel_t>(k);
  return k ? cudaSuccess : finish(cudaErrorInvalidDeviceFunction);
}

extern "C" cudaError_t __cudaLaunchKernel(cudaKernel_t kernel, dim3 gridDim, dim3 blockDim, void** args,
                                          size_t sharedMem, cudaStream_t stream) {
  return finish(launch(kernel, gridDim, blockDim, args, sharedMem, stream, {}));
}

extern "C" cudaError_t __cudaLaunchKernel_ptsz(cudaKernel_t kernel, dim3 gridDim, dim3 blockDim, void** args,
                                               size_t sharedMem, cudaStream_t stream) {
  return finish(launch(kernel, gridDim, blockDim, args, sharedMem, per_thread(stream), {}));
}

extern "C" cudaError_t cudaLaunchKernel(const void* func, dim3 gridDim, dim3 blockDim, void** args,
                                        size_t sharedMem, cudaStream_t stream) {
  return finish(launch(func, gridDim, blockDim, args, sharedMem, stream, {}));
}

extern "C" cudaError_t cudaLaunchKernel_ptsz(const void* func, dim3 gridDim, dim3 blockDim, void** args,
                                             size_t sharedMem, cudaStream_t stream) {
  return finish(launch(func, gridDim, blockDim, args, sharedMem, per_thread(stream), {}));
}

extern "C" cudaError_t cudaLaunchKernelExC(const cudaLaunchConfig_t* config, const void* func, void** args) {
  return finish(launch_ex(config, func, args, false));
}

extern "C" cudaError_t cudaLaunchKernelExC_ptsz(const cudaLaunchConfig_t* config, const void* func, void** args) {
  return finish(launch_ex(config, func, args, true));
}

extern "C" cudaError_t cudaLaunchCooperativeKernel(const void* func, dim3 gridDim, dim3 blockDim, void** args,
                                                   size_t sharedMem, cudaStream_t stream) {
  launch_options opt;
  opt.flags = kCooperative;
  return finish(launch(func, gridDim, blockDim, args, sharedMem, stream, opt));
}

extern "C" cudaError_t cudaLaunchCooperativeKernel_ptsz(const void* func, dim3 gridDim, dim3 blockDim, void** args,
                                                        size_t sharedMem, cudaStream_t stream) {
  launch_options opt;
  opt.flags = kCooperative;
  return finish(launch(func, gridDim, blockDim, args, sharedMem, per_thread(stream), opt));
}

namespace {
// The function id of a kernel, resolving it on first use.
cudaError_t function_of(const void* func, uint64_t* id) {
  kernel_entry* k = find_kernel(func);
  if (!k) return cudaErrorInvalidDeviceFunction;
  cudaError_t st = cudaSuccess;
  if (!__atomic_load_n(&k->resolved, __ATOMIC_ACQUIRE) && (st = resolve_kernel(k)) != cudaSuccess) return st;
  *id = k->function;
  return cudaSuccess;
}
}  // namespace

extern "C" cudaError_t cudaFuncGetAttributes(cudaFuncAttributes* attr, const void* func) {
  uint64_t f = 0;
  const cudaError_t st = function_of(func, &f);
  if (st != cudaSuccess) return finish(st);
  return finish(vgpu::remote::vgpuFuncGetAttributes(attr, f));
}

extern "C" cudaError_t cudaFuncSetAttribute(const void* func, cudaFuncAttribute attr, int value) {
  uint64_t f = 0;
  const cudaError_t st = function_of(func, &f);
  if (st != cudaSuccess) return finish(st);
  return finish(vgpu::remote::vgpuFuncSetAttribute(f, attr, value));
}

extern "C" cudaError_t cudaFuncSetCacheConfig(const void* func, cudaFuncCache cacheConfig) {
  // A preference the hardware may ignore (Hopper sizes L1/shared itself);
  // accepted for a known kernel, as NVIDIA's runtime does.
  if (cacheConfig < cudaFuncCachePreferNone || cacheConfig > cudaFuncCachePreferEqual) return finish(cudaErrorInvalidValue);
  uint64_t f = 0;
  return finish(function_of(func, &f));
}

extern "C" cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(int* numBlocks, const void* func,
                                                                              int blockSize, size_t dynamicSMemSize,
                                                                              unsigned int flags) {
  uint64_t f = 0;
  const cudaError_t st = function_of(func, &f);
  if (st != cudaSuccess) return finish(st);
  return finish(vgpu::remote::vgpuOccupancyMaxActiveBlocks(numBlocks, f, blockSize, dynamicSMemSize, flags));
}

extern "C" cudaError_t cudaOccupancyMaxActiveBlocksPerMultiprocessor(int* numBlocks, const void* func, int blockSize,
                                                                     size_t dynamicSMemSize) {
  return cudaOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(numBlocks, func, blockSize, dynamicSMemSize,
                                                                cudaOccupancyDefault);
}

// The launch configuration is read here, by value (a forwarded guest pointer
// would crash the host); cluster 0 = the kernel's compile-time dimensions.
extern "C" cudaError_t cudaOccupancyMaxActiveClusters(int* numClusters, const void* func,
                                                      const cudaLaunchConfig_t* launchConfig) {
  if (!numClusters || !launchConfig || (launchConfig->numAttrs && !launchConfig->attrs)) {
    return finish(cudaErrorInvalidValue);
  }
  uint64_t f = 0;
  const cudaError_t st = function_of(func, &f);
  if (st != cudaSuccess) return finish(st);
  dim3 cluster(0, 0, 0);
  for (unsigned i = 0; i < launchConfig->numAttrs; ++i) {
    const cudaLaunchAttribute& a = launchConfig->attrs[i];
    if (a.id == cudaLaunchAttributeClusterDimension)
      cluster = dim3(a.val.clusterDim.x, a.val.clusterDim.y, a.val.clusterDim.z);
  }
  if (launchConfig->dynamicSmemBytes > UINT32_MAX) return finish(cudaErrorInvalidValue);
  const dim3 g = launchConfig->gridDim, b = launchConfig->blockDim;
  return finish(vgpu::remote::vgpuOccupancyMaxActiveClusters(numClusters, f, g.x, g.y, g.z, b.x, b.y, b.z,
                                                             static_cast<unsigned>(launchConfig->dynamicSmemBytes),
                                                             cluster.x, cluster.y, cluster.z));
}
