// Stream-ordered allocation (cudaMallocAsync and friends) on the host's
// default pool of the device, and the pool handles programs ask for. Each
// device has one pool here, its default: its attributes are kept in the
// guest (the release threshold and reuse policies are hints the host pool
// does not need to follow for correctness); usage counters are not tracked
// and read as 0.
#include <cstring>
#include <mutex>

#include <cuda_runtime_api.h>

#include "guest_remote.h"
#include "shim/cudart/device_ranges.h"
#include "shim/cudart/last_error.h"
#include "shim/transport/guest_call.h"

using vgpu::shim::finish;

namespace {

constexpr int kMaxDevices = 64;

struct pool_state {
  int device = 0;
  unsigned long long release_threshold = 0;
  int reuse_follow_event_dependencies = 1;
  int reuse_allow_opportunistic = 1;
  int reuse_allow_internal_dependencies = 1;
};

std::mutex g_pool_mutex;
pool_state g_pools[kMaxDevices];

bool device_ok(int device) {
  int count = 0;
  return device >= 0 && device < kMaxDevices && vgpu::remote::cudaGetDeviceCount(&count) == cudaSuccess &&
         device < count;
}

pool_state* pool_of(cudaMemPool_t pool) {
  auto* p = reinterpret_cast<pool_state*>(pool);
  return p >= g_pools && p < g_pools + kMaxDevices ? p : nullptr;
}

cudaError_t malloc_async(void** devPtr, size_t size, cudaStream_t stream) {
  if (!devPtr) return cudaErrorInvalidValue;
  unsigned long long p = 0;
  const cudaError_t st = vgpu::remote::vgpuMallocAsync(&p, size, stream);
  if (st != cudaSuccess) return st;
  *devPtr = reinterpret_cast<void*>(p);
  if (p) vgpu::shim::remember_device_range(p, size);
  return cudaSuccess;
}

cudaError_t free_async(void* devPtr, cudaStream_t stream) {
  if (!devPtr) return cudaSuccess;
  vgpu::shim::forget_device_range(reinterpret_cast<uint64_t>(devPtr));
  // Posted: a bad pointer is reported at the next synchronising call.
  return vgpu::remote::vgpuFreeAsync(reinterpret_cast<uint64_t>(devPtr), stream);
}

cudaStream_t per_thread(cudaStream_t s) { return s ? s : cudaStreamPerThread; }

}  // namespace

extern "C" cudaError_t cudaMallocAsync(void** devPtr, size_t size, cudaStream_t hStream) {
  return finish(malloc_async(devPtr, size, hStream));
}
extern "C" cudaError_t cudaMallocAsync_ptsz(void** devPtr, size_t size, cudaStream_t hStream) {
  return finish(malloc_async(devPtr, size, per_thread(hStream)));
}
extern "C" cudaError_t cudaFreeAsync(void* devPtr, cudaStream_t hStream) {
  return finish(free_async(devPtr, hStream));
}
extern "C" cudaError_t cudaFreeAsync_ptsz(void* devPtr, cudaStream_t hStream) {
  return finish(free_async(devPtr, per_thread(hStream)));
}

// Only a device's default pool exists here; created pools are not supported
// (cudaMemPoolCreate answers cudaErrorNotSupported).
extern "C" cudaError_t cudaMallocFromPoolAsync(void** ptr, size_t size, cudaMemPool_t memPool, cudaStream_t stream) {
  if (!pool_of(memPool)) return finish(cudaErrorInvalidValue);
  return finish(malloc_async(ptr, size, stream));
}
extern "C" cudaError_t cudaMallocFromPoolAsync_ptsz(void** ptr, size_t size, cudaMemPool_t memPool,
                                                    cudaStream_t stream) {
  if (!pool_of(memPool)) return finish(cudaErrorInvalidValue);
  return finish(malloc_async(ptr, size, per_thread(stream)));
}

extern "C" cudaError_t cudaDeviceGetDefaultMemPool(cudaMemPool_t* memPool, int device) {
  if (!memPool) return finish(cudaErrorInvalidValue);
  if (!device_ok(device)) return finish(cudaErrorInvalidDevice);
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  g_pools[device].device = device;
  *memPool = reinterpret_cast<cudaMemPool_t>(&g_pools[device]);
  return cudaSuccess;
}

extern "C" cudaError_t cudaDeviceGetMemPool(cudaMemPool_t* memPool, int device) {
  return cudaDeviceGetDefaultMemPool(memPool, device);
}

extern "C" cudaError_t cudaDeviceSetMemPool(int device, cudaMemPool_t memPool) {
  if (!device_ok(device)) return finish(cudaErrorInvalidDevice);
  // The default pool is the only one there is.
  return memPool == reinterpret_cast<cudaMemPool_t>(&g_pools[device]) ? cudaSuccess
                                                                       : finish(cudaErrorInvalidValue);
}

extern "C" cudaError_t cudaMemPoolSetAttribute(cudaMemPool_t memPool, cudaMemPoolAttr attr, void* value) {
  pool_state* p = pool_of(memPool);
  if (!p || !value) return finish(cudaErrorInvalidValue);
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  switch (attr) {
    case cudaMemPoolAttrReleaseThreshold: std::memcpy(&p->release_threshold, value, sizeof p->release_threshold); break;
    case cudaMemPoolReuseFollowEventDependencies:
      std::memcpy(&p->reuse_follow_event_dependencies, value, sizeof(int));
      break;
    case cudaMemPoolReuseAllowOpportunistic: std::memcpy(&p->reuse_allow_opportunistic, value, sizeof(int)); break;
    case cudaMemPoolReuseAllowInternalDependencies:
      std::memcpy(&p->reuse_allow_internal_dependencies, value, sizeof(int));
      break;
    case cudaMemPoolAttrReservedMemHigh:
    case cudaMemPoolAttrUsedMemHigh: {
      unsigned long long v = 0;
      std::memcpy(&v, value, sizeof v);
      if (v != 0) return finish(cudaErrorInvalidValue);  // only a reset to 0 is allowed
      break;
    }
    default: return finish(cudaErrorInvalidValue);  // the *Current counters are read-only
  }
  return cudaSuccess;
}

extern "C" cudaError_t cudaMemPoolGetAttribute(cudaMemPool_t memPool, cudaMemPoolAttr attr, void* value) {
  pool_state* p = pool_of(memPool);
  if (!p || !value) return finish(cudaErrorInvalidValue);
  std::lock_guard<std::mutex> lock(g_pool_mutex);
  const unsigned long long zero = 0;
  switch (attr) {
    case cudaMemPoolAttrReleaseThreshold: std::memcpy(value, &p->release_threshold, sizeof p->release_threshold); break;
    case cudaMemPoolReuseFollowEventDependencies:
      std::memcpy(value, &p->reuse_follow_event_dependencies, sizeof(int));
      break;
    case cudaMemPoolReuseAllowOpportunistic: std::memcpy(value, &p->reuse_allow_opportunistic, sizeof(int)); break;
    case cudaMemPoolReuseAllowInternalDependencies:
      std::memcpy(value, &p->reuse_allow_internal_dependencies, sizeof(int));
      break;
    case cudaMemPoolAttrReservedMemCurrent:
    case cudaMemPoolAttrReservedMemHigh:
    case cudaMemPoolAttrUsedMemCurrent:
    case cudaMemPoolAttrUsedMemHigh:
      std::memcpy(value, &zero, sizeof zero);  // not tracked (see the file comment)
      break;
    default: return finish(cudaErrorInvalidValue);
  }
  return cudaSuccess;
}

// The host pool keeps what it keeps; trimming is a memory hint, never needed
// for correctness.
extern "C" cudaError_t cudaMemPoolTrimTo(cudaMemPool_t memPool, size_t /*minBytesToKeep*/) {
  return pool_of(memPool) ? cudaSuccess : finish(cudaErrorInvalidValue);
}
