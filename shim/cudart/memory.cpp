// Device and pinned host memory.
#include <cstddef>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>

#include <cuda_runtime_api.h>

#include "guest_remote.h"
#include "shim/cudart/device_ranges.h"
#include "shim/cudart/last_error.h"

namespace vgpu::shim {

namespace {
// Pinned host buffers handed out by cudaMallocHost / cudaHostAlloc. For now
// they are page-aligned guest memory; carving them out of the shared region
// (zero-copy DMA) is the performance issue's work.
std::mutex g_host_mutex;
std::map<void*, size_t>& host_buffers() {  // base -> bytes
  static auto* s = new std::map<void*, size_t>;
  return *s;
}
constexpr size_t kPage = 4096;
}  // namespace

bool is_pinned_host_pointer(const void* p) {
  std::lock_guard<std::mutex> lock(g_host_mutex);
  auto it = host_buffers().upper_bound(const_cast<void*>(p));
  if (it == host_buffers().begin()) return false;
  --it;
  return static_cast<const char*>(p) - static_cast<const char*>(it->first) < static_cast<std::ptrdiff_t>(it->second);
}

}  // namespace vgpu::shim

using vgpu::shim::finish;

extern "C" cudaError_t cudaMalloc(void** devPtr, size_t size) {
  const cudaError_t st = vgpu::remote::cudaMalloc(devPtr, size);
  if (st == cudaSuccess && *devPtr)
    vgpu::shim::remember_device_range(reinterpret_cast<uint64_t>(*devPtr), size);
  return finish(st);
}

extern "C" cudaError_t cudaFree(void* devPtr) {
  if (!devPtr) return cudaSuccess;
  const cudaError_t st = vgpu::remote::cudaFree(devPtr);
  if (st == cudaSuccess) vgpu::shim::forget_device_range(reinterpret_cast<uint64_t>(devPtr));
  return finish(st);
}

extern "C" cudaError_t cudaHostAlloc(void** pHost, size_t size, unsigned int flags) {
  constexpr unsigned kKnown = cudaHostAllocPortable | cudaHostAllocMapped | cudaHostAllocWriteCombined;
  if (!pHost || (flags & ~kKnown)) return finish(cudaErrorInvalidValue);
  if (size == 0) {
    *pHost = nullptr;
    return cudaSuccess;
  }
  void* p = nullptr;
  const size_t rounded = (size + vgpu::shim::kPage - 1) / vgpu::shim::kPage * vgpu::shim::kPage;
  if (rounded < size || posix_memalign(&p, vgpu::shim::kPage, rounded) != 0)
    return finish(cudaErrorMemoryAllocation);
  {
    std::lock_guard<std::mutex> lock(vgpu::shim::g_host_mutex);
    vgpu::shim::host_buffers().emplace(p, rounded);
  }
  *pHost = p;
  return cudaSuccess;
}

extern "C" cudaError_t cudaMallocHost(void** ptr, size_t size) {
  return cudaHostAlloc(ptr, size, cudaHostAllocDefault);
}

extern "C" cudaError_t cudaFreeHost(void* ptr) {
  if (!ptr) return cudaSuccess;
  {
    std::lock_guard<std::mutex> lock(vgpu::shim::g_host_mutex);
    if (vgpu::shim::host_buffers().erase(ptr) == 0) return finish(cudaErrorInvalidValue);
  }
  std::free(ptr);
  return cudaSuccess;
}
