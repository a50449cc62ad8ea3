// cudaHostRegister / cudaHostUnregister. What vgpu can honour: the range is
// remembered, so cudaPointerGetAttributes calls it Host memory and copies
// from and to it work as from any host memory (through the channel's data
// area). What it cannot: the device reaching guest pages directly
// (cudaHostRegisterMapped has no device pointer, cudaHostGetDevicePointer is
// unsupported) and I/O memory (cudaHostRegisterIoMemory is refused).
#include <cstdint>
#include <map>
#include <mutex>

#include <cuda_runtime_api.h>

#include "shim/cudart/device_ranges.h"
#include "shim/cudart/last_error.h"
#include "shim/transport/guest_log.h"

using vgpu::shim::finish;

namespace {

std::mutex g_mutex;
std::map<uintptr_t, size_t>& registered() {  // base -> bytes
  static auto* r = new std::map<uintptr_t, size_t>;
  return *r;
}

}  // namespace

namespace vgpu::shim {

bool is_registered_host_pointer(const void* p) {
  const auto v = reinterpret_cast<uintptr_t>(p);
  std::lock_guard<std::mutex> lock(g_mutex);
  auto it = registered().upper_bound(v);
  if (it == registered().begin()) return false;
  --it;
  return v - it->first < it->second;
}

}  // namespace vgpu::shim

extern "C" cudaError_t cudaHostRegister(void* ptr, size_t size, unsigned int flags) {
  constexpr unsigned kKnown = cudaHostRegisterPortable | cudaHostRegisterMapped | cudaHostRegisterIoMemory |
                              cudaHostRegisterReadOnly;
  if (!ptr || size == 0 || (flags & ~kKnown)) return finish(cudaErrorInvalidValue);
  if (flags & cudaHostRegisterIoMemory) return finish(cudaErrorNotSupported);
  if (flags & cudaHostRegisterMapped) {
    VGPU_GLOG(warn, "[cuda-transport] cudaHostRegister: cudaHostRegisterMapped: the device cannot reach guest pages "
                    "directly through vgpu; the range is registered for copies only");
  }
  const auto base = reinterpret_cast<uintptr_t>(ptr);
  std::lock_guard<std::mutex> lock(g_mutex);
  auto& r = registered();
  // Overlapping an existing registration is an error, as in NVIDIA's runtime.
  auto next = r.lower_bound(base);
  if (next != r.end() && next->first < base + size) return finish(cudaErrorHostMemoryAlreadyRegistered);
  if (next != r.begin() && std::prev(next)->first + std::prev(next)->second > base) {
    return finish(cudaErrorHostMemoryAlreadyRegistered);
  }
  r.emplace(base, size);
  return cudaSuccess;
}

extern "C" cudaError_t cudaHostUnregister(void* ptr) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (registered().erase(reinterpret_cast<uintptr_t>(ptr)) == 0) return finish(cudaErrorHostMemoryNotRegistered);
  return cudaSuccess;
}
