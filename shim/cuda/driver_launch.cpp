// Kernel launches and occupancy through the driver API. A launch is posted
// like the runtime's (shim/transport/module_calls.h): the parameter block is
// packed here from kernelParams by the function's layout, or taken as the
// caller packed it (`extra`), and errors the host finds surface at the next
// synchronising call. Launch configurations are read here, by value: no
// guest pointer ever travels.
#include <algorithm>
#include <cstring>

#include <cuda.h>
#include <cuda_runtime_api.h>

#include "guest_remote.h"
#include "shim/cuda/driver_common.h"
#include "shim/cuda/driver_objects.h"
#include "shim/transport/guest_call.h"
#include "shim/transport/guest_log.h"
#include "shim/transport/module_calls.h"

using namespace vgpu::shim;

namespace {

// What the driver refuses before a launch reaches the device.
CUresult check_shape(const launch_shape& s) {
  for (int i = 0; i < 3; ++i)
    if (s.grid[i] == 0 || s.block[i] == 0) return CUDA_ERROR_INVALID_VALUE;
  if (uint64_t{s.block[0]} * s.block[1] * s.block[2] > 1024 || s.block[2] > 64 || s.grid[1] > 65535 ||
      s.grid[2] > 65535) {
    return CUDA_ERROR_INVALID_VALUE;
  }
  return CUDA_SUCCESS;
}

// The parameter block from kernelParams (one pointer per parameter) or from
// `extra` (CU_LAUNCH_PARAM_BUFFER_POINTER / _SIZE / _END), never both.
CUresult pack(const drv_function& f, void** kernelParams, void** extra, uint8_t* block) {
  if (f.param_bytes > kMaxParamBlock) return CUDA_ERROR_INVALID_VALUE;
  std::memset(block, 0, f.param_bytes);  // padding carries no stack bytes
  if (kernelParams && extra) return CUDA_ERROR_INVALID_VALUE;
  if (kernelParams) {
    for (size_t i = 0; i < f.layout.size(); ++i) {
      if (!kernelParams[i]) return CUDA_ERROR_INVALID_VALUE;
      std::memcpy(block + f.layout[i].first, kernelParams[i], f.layout[i].second);
    }
    return CUDA_SUCCESS;
  }
  if (extra) {
    const void* buffer = nullptr;
    const size_t* size = nullptr;
    for (size_t i = 0; extra[i] != CU_LAUNCH_PARAM_END; i += 2) {
      if (i >= 64) return CUDA_ERROR_INVALID_VALUE;  // no END in sight: a broken list
      if (extra[i] == CU_LAUNCH_PARAM_BUFFER_POINTER) buffer = extra[i + 1];
      else if (extra[i] == CU_LAUNCH_PARAM_BUFFER_SIZE) size = static_cast<const size_t*>(extra[i + 1]);
      else return CUDA_ERROR_INVALID_VALUE;
    }
    if (f.param_bytes == 0) return CUDA_SUCCESS;
    // The caller's buffer must hold the whole block the kernel takes.
    if (!buffer || !size || *size < f.param_bytes) return CUDA_ERROR_INVALID_VALUE;
    std::memcpy(block, buffer, f.param_bytes);
    return CUDA_SUCCESS;
  }
  return f.layout.empty() ? CUDA_SUCCESS : CUDA_ERROR_INVALID_VALUE;
}

CUresult launch(CUfunction hf, launch_shape shape, void** kernelParams, void** extra) {
  VGPU_REQUIRE_INIT();
  drv_function* f = live_function(hf);
  if (!f) return CUDA_ERROR_INVALID_HANDLE;
  if (const CUresult r = check_shape(shape); r != CUDA_SUCCESS) return r;
  alignas(16) uint8_t block[kMaxParamBlock];
  if (const CUresult r = pack(*f, kernelParams, extra, block); r != CUDA_SUCCESS) return r;
  return to_cu(post_launch(f->function, shape, block, f->param_bytes));
}

launch_shape shape_of(unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by, unsigned bz, unsigned shared,
                      CUstream s) {
  launch_shape shape;
  shape.grid[0] = gx;
  shape.grid[1] = gy;
  shape.grid[2] = gz;
  shape.block[0] = bx;
  shape.block[1] = by;
  shape.block[2] = bz;
  shape.shared_mem = shared;
  shape.stream = reinterpret_cast<uint64_t>(s);  // the runtime's stream ids: one table per session
  return shape;
}

// Per-thread default stream builds (_ptsz): the NULL stream is the thread's.
CUstream per_thread(CUstream s) { return s ? s : CU_STREAM_PER_THREAD; }

// CUlaunchConfig's attributes, read by value. Scheduling hints the wire does
// not carry (priority, access policy windows, ...) are dropped: the launch
// itself is correct without them.
CUresult read_attributes(const CUlaunchConfig* config, launch_shape* shape) {
  if (config->numAttrs && !config->attrs) return CUDA_ERROR_INVALID_VALUE;
  for (unsigned i = 0; i < config->numAttrs; ++i) {
    const CUlaunchAttribute& a = config->attrs[i];
    switch (a.id) {
      case CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION:
        shape->cluster[0] = a.value.clusterDim.x;
        shape->cluster[1] = a.value.clusterDim.y;
        shape->cluster[2] = a.value.clusterDim.z;
        break;
      case CU_LAUNCH_ATTRIBUTE_COOPERATIVE:
        if (a.value.cooperative) shape->flags |= kLaunchCooperative;
        break;
      case CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION:
        if (a.value.programmaticStreamSerializationAllowed) shape->flags |= kLaunchProgrammatic;
        break;
      default:
        VGPU_GLOG(debug, "[cuda-transport] cuLaunchKernelEx: launch attribute %d not carried", static_cast<int>(a.id));
        break;
    }
  }
  return CUDA_SUCCESS;
}

CUresult launch_ex(const CUlaunchConfig* config, CUfunction f, void** kernelParams, void** extra, bool ptsz) {
  if (!config) return CUDA_ERROR_INVALID_VALUE;
  launch_shape shape = shape_of(config->gridDimX, config->gridDimY, config->gridDimZ, config->blockDimX,
                                config->blockDimY, config->blockDimZ, config->sharedMemBytes,
                                ptsz ? per_thread(config->hStream) : config->hStream);
  if (const CUresult r = read_attributes(config, &shape); r != CUDA_SUCCESS) return r;
  return launch(f, shape, kernelParams, extra);
}

}  // namespace

extern "C" CUresult cuLaunchKernel(CUfunction f, unsigned int gridDimX, unsigned int gridDimY, unsigned int gridDimZ,
                                   unsigned int blockDimX, unsigned int blockDimY, unsigned int blockDimZ,
                                   unsigned int sharedMemBytes, CUstream hStream, void** kernelParams,
                                   void** extra) {
  return launch(f, shape_of(gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ, sharedMemBytes, hStream),
                kernelParams, extra);
}

extern "C" CUresult cuLaunchKernel_ptsz(CUfunction f, unsigned int gridDimX, unsigned int gridDimY,
                                        unsigned int gridDimZ, unsigned int blockDimX, unsigned int blockDimY,
                                        unsigned int blockDimZ, unsigned int sharedMemBytes, CUstream hStream,
                                        void** kernelParams, void** extra) {
  return launch(f,
                shape_of(gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ, sharedMemBytes,
                         per_thread(hStream)),
                kernelParams, extra);
}

extern "C" CUresult cuLaunchKernelEx(const CUlaunchConfig* config, CUfunction f, void** kernelParams, void** extra) {
  return launch_ex(config, f, kernelParams, extra, false);
}

extern "C" CUresult cuLaunchKernelEx_ptsz(const CUlaunchConfig* config, CUfunction f, void** kernelParams,
                                          void** extra) {
  return launch_ex(config, f, kernelParams, extra, true);
}

extern "C" CUresult cuLaunchCooperativeKernel(CUfunction f, unsigned int gridDimX, unsigned int gridDimY,
                                              unsigned int gridDimZ, unsigned int blockDimX, unsigned int blockDimY,
                                              unsigned int blockDimZ, unsigned int sharedMemBytes, CUstream hStream,
                                              void** kernelParams) {
  launch_shape shape = shape_of(gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ, sharedMemBytes, hStream);
  shape.flags = kLaunchCooperative;
  return launch(f, shape, kernelParams, nullptr);
}

extern "C" CUresult cuLaunchCooperativeKernel_ptsz(CUfunction f, unsigned int gridDimX, unsigned int gridDimY,
                                                   unsigned int gridDimZ, unsigned int blockDimX,
                                                   unsigned int blockDimY, unsigned int blockDimZ,
                                                   unsigned int sharedMemBytes, CUstream hStream,
                                                   void** kernelParams) {
  return cuLaunchCooperativeKernel(f, gridDimX, gridDimY, gridDimZ, blockDimX, blockDimY, blockDimZ, sharedMemBytes,
                                   per_thread(hStream), kernelParams);
}

// --- occupancy -------------------------------------------------------------------

extern "C" CUresult cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(int* numBlocks, CUfunction func,
                                                                         int blockSize, size_t dynamicSMemSize,
                                                                         unsigned int flags) {
  VGPU_REQUIRE_INIT();
  if (!numBlocks) return CUDA_ERROR_INVALID_VALUE;
  drv_function* f = live_function(func);
  if (!f) return CUDA_ERROR_INVALID_HANDLE;
  // CU_OCCUPANCY_* == cudaOccupancy* flags.
  return to_cu(vgpu::remote::vgpuOccupancyMaxActiveBlocks(numBlocks, f->function, blockSize, dynamicSMemSize, flags));
}

extern "C" CUresult cuOccupancyMaxActiveBlocksPerMultiprocessor(int* numBlocks, CUfunction func, int blockSize,
                                                                size_t dynamicSMemSize) {
  return cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(numBlocks, func, blockSize, dynamicSMemSize,
                                                              CU_OCCUPANCY_DEFAULT);
}

// The block size with the most resident threads per SM (ties: the larger
// block), found by asking the host's occupancy calculator for every multiple
// of the warp size; the callback that sizes dynamic shared memory per block
// size is the caller's and runs here, in the guest.
extern "C" CUresult cuOccupancyMaxPotentialBlockSizeWithFlags(int* minGridSize, int* blockSize, CUfunction func,
                                                              CUoccupancyB2DSize blockSizeToDynamicSMemSize,
                                                              size_t dynamicSMemSize, int blockSizeLimit,
                                                              unsigned int flags) {
  VGPU_REQUIRE_INIT();
  if (!minGridSize || !blockSize) return CUDA_ERROR_INVALID_VALUE;
  drv_function* f = live_function(func);
  if (!f) return CUDA_ERROR_INVALID_HANDLE;
  cudaFuncAttributes attrs;
  if (const cudaError_t st = vgpu::remote::vgpuFuncGetAttributes(&attrs, f->function); st != cudaSuccess) {
    return to_cu(st);
  }
  int sms = 0;
  int warp = 32;
  const int dev = thread_device();
  if (const cudaError_t st = vgpu::remote::cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
      st != cudaSuccess) {
    return to_cu(st);
  }
  vgpu::remote::cudaDeviceGetAttribute(&warp, cudaDevAttrWarpSize, dev);
  if (warp <= 0) warp = 32;
  int limit = attrs.maxThreadsPerBlock;
  if (blockSizeLimit > 0) limit = std::min(limit, blockSizeLimit);
  int best_block = 0, best_blocks = 0;
  long best_threads = 0;
  for (int b = (limit / warp) * warp; b > 0; b -= warp) {
    const size_t smem = blockSizeToDynamicSMemSize ? blockSizeToDynamicSMemSize(b) : dynamicSMemSize;
    int n = 0;
    const cudaError_t st = vgpu::remote::vgpuOccupancyMaxActiveBlocks(&n, f->function, b, smem, flags);
    if (st != cudaSuccess) return to_cu(st);
    if (long{n} * b > best_threads) {
      best_threads = long{n} * b;
      best_block = b;
      best_blocks = n;
    }
  }
  if (best_block == 0 && limit > 0 && limit < warp) best_block = limit;  // a limit below one warp
  *blockSize = best_block;
  *minGridSize = best_blocks * sms;
  return CUDA_SUCCESS;
}

extern "C" CUresult cuOccupancyMaxPotentialBlockSize(int* minGridSize, int* blockSize, CUfunction func,
                                                     CUoccupancyB2DSize blockSizeToDynamicSMemSize,
                                                     size_t dynamicSMemSize, int blockSizeLimit) {
  return cuOccupancyMaxPotentialBlockSizeWithFlags(minGridSize, blockSize, func, blockSizeToDynamicSMemSize,
                                                   dynamicSMemSize, blockSizeLimit, CU_OCCUPANCY_DEFAULT);
}

extern "C" CUresult cuOccupancyMaxActiveClusters(int* numClusters, CUfunction func, const CUlaunchConfig* config) {
  VGPU_REQUIRE_INIT();
  if (!numClusters || !config) return CUDA_ERROR_INVALID_VALUE;
  drv_function* f = live_function(func);
  if (!f) return CUDA_ERROR_INVALID_HANDLE;
  launch_shape shape = shape_of(config->gridDimX, config->gridDimY, config->gridDimZ, config->blockDimX,
                                config->blockDimY, config->blockDimZ, config->sharedMemBytes, nullptr);
  if (const CUresult r = read_attributes(config, &shape); r != CUDA_SUCCESS) return r;
  // Values only: the host builds its own CUlaunchConfig from them.
  return to_cu(vgpu::remote::vgpuOccupancyMaxActiveClusters(
      numClusters, f->function, shape.grid[0], shape.grid[1], shape.grid[2], shape.block[0], shape.block[1],
      shape.block[2], shape.shared_mem, shape.cluster[0], shape.cluster[1], shape.cluster[2]));
}
