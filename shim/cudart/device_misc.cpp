// The runtime's device calls beyond selection: PCI ids, peers, flags, cache
// configuration, profiler markers. The PCI id and the primary context's
// flags are the driver API's (libcuda.so.1, which this library sits on), so
// both APIs always agree.
#include <cctype>
#include <cstdio>
#include <cstring>
#include <atomic>
#include <mutex>

#include <cuda.h>
#include <cuda_runtime_api.h>

#include "shim/cudart/last_error.h"
#include "shim/transport/guest_call.h"

using vgpu::shim::finish;

namespace {

// NVIDIA's runtime initialises the driver on its first call; so does this one
// before it uses the driver API.
cudaError_t driver_ready() {
  static std::once_flag once;
  static CUresult r = CUDA_SUCCESS;
  std::call_once(once, [] { r = cuInit(0); });
  if (r == CUDA_SUCCESS) return cudaSuccess;
  return r == CUDA_ERROR_NO_DEVICE ? cudaErrorNoDevice : cudaErrorInitializationError;
}

cudaError_t device_valid(int device) {
  int count = 0;
  if (const cudaError_t st = cudaGetDeviceCount(&count); st != cudaSuccess) return st;
  return device >= 0 && device < count ? cudaSuccess : cudaErrorInvalidDevice;
}

// Driver statuses these calls can see, as the runtime names them.
cudaError_t from_cu(CUresult r) {
  switch (r) {
    case CUDA_SUCCESS: return cudaSuccess;
    case CUDA_ERROR_INVALID_DEVICE: return cudaErrorInvalidDevice;
    case CUDA_ERROR_INVALID_VALUE: return cudaErrorInvalidValue;
    case CUDA_ERROR_NO_DEVICE: return cudaErrorNoDevice;
    default: return cudaErrorUnknown;
  }
}

// "dddd:bb:dd.f" in any case, the domain optional (as cudaDeviceGetByPCIBusId
// accepts): domain, bus and device, or false.
bool parse_bus_id(const char* s, unsigned* domain, unsigned* bus, unsigned* dev) {
  unsigned a = 0, b = 0, c = 0, f = 0;
  if (std::sscanf(s, "%x:%x:%x.%x", &a, &b, &c, &f) == 4) {
    *domain = a, *bus = b, *dev = c;
    return true;
  }
  if (std::sscanf(s, "%x:%x.%x", &b, &c, &f) == 3) {
    *domain = 0, *bus = b, *dev = c;
    return true;
  }
  return false;
}

}  // namespace

extern "C" cudaError_t cudaDeviceGetPCIBusId(char* pciBusId, int len, int device) {
  if (!pciBusId || len <= 0) return finish(cudaErrorInvalidValue);
  if (const cudaError_t st = driver_ready(); st != cudaSuccess) return finish(st);
  if (const cudaError_t st = device_valid(device); st != cudaSuccess) return finish(st);
  return finish(from_cu(cuDeviceGetPCIBusId(pciBusId, len, device)));
}

extern "C" cudaError_t cudaDeviceGetByPCIBusId(int* device, const char* pciBusId) {
  if (!device || !pciBusId) return finish(cudaErrorInvalidValue);
  unsigned want_domain = 0, want_bus = 0, want_dev = 0;
  if (!parse_bus_id(pciBusId, &want_domain, &want_bus, &want_dev)) return finish(cudaErrorInvalidValue);
  int count = 0;
  if (const cudaError_t st = cudaGetDeviceCount(&count); st != cudaSuccess) return finish(st);
  for (int d = 0; d < count; ++d) {
    cudaDeviceProp p;
    if (const cudaError_t st = cudaGetDeviceProperties(&p, d); st != cudaSuccess) return finish(st);
    if (unsigned(p.pciDomainID) == want_domain && unsigned(p.pciBusID) == want_bus &&
        unsigned(p.pciDeviceID) == want_dev) {
      *device = d;
      return cudaSuccess;
    }
  }
  return finish(cudaErrorInvalidDevice);
}

// Peer access between the VM's devices is not offered yet (one device per
// session): the answer is "no", and enabling it says why.
extern "C" cudaError_t cudaDeviceCanAccessPeer(int* canAccessPeer, int device, int peerDevice) {
  if (!canAccessPeer) return finish(cudaErrorInvalidValue);
  if (const cudaError_t st = device_valid(device); st != cudaSuccess) return finish(st);
  if (const cudaError_t st = device_valid(peerDevice); st != cudaSuccess) return finish(st);
  *canAccessPeer = 0;
  return cudaSuccess;
}

extern "C" cudaError_t cudaDeviceEnablePeerAccess(int peerDevice, unsigned int flags) {
  if (flags != 0) return finish(cudaErrorInvalidValue);
  if (const cudaError_t st = device_valid(peerDevice); st != cudaSuccess) return finish(st);
  return finish(peerDevice == vgpu::shim::thread_device() ? cudaErrorInvalidDevice
                                                          : cudaErrorPeerAccessUnsupported);
}

extern "C" cudaError_t cudaDeviceDisablePeerAccess(int peerDevice) {
  if (const cudaError_t st = device_valid(peerDevice); st != cudaSuccess) return finish(st);
  return finish(cudaErrorPeerAccessNotEnabled);
}

// The device flags are the primary context's (cudaDeviceScheduleMask,
// cudaDeviceMapHost, cudaDeviceLmemResizeToMax ...).
extern "C" cudaError_t cudaSetDeviceFlags(unsigned int flags) {
  constexpr unsigned kKnown = cudaDeviceScheduleMask | cudaDeviceMapHost | cudaDeviceLmemResizeToMax |
                              cudaDeviceSyncMemops;
  if (flags & ~kKnown) return finish(cudaErrorInvalidValue);
  if (const cudaError_t st = driver_ready(); st != cudaSuccess) return finish(st);
  return finish(from_cu(cuDevicePrimaryCtxSetFlags(vgpu::shim::thread_device(), flags)));
}

extern "C" cudaError_t cudaGetDeviceFlags(unsigned int* flags) {
  if (!flags) return finish(cudaErrorInvalidValue);
  if (const cudaError_t st = driver_ready(); st != cudaSuccess) return finish(st);
  int active = 0;
  const CUresult r = cuDevicePrimaryCtxGetState(vgpu::shim::thread_device(), flags, &active);
  // Host memory is always mappable with unified addressing: the runtime says so.
  if (r == CUDA_SUCCESS) *flags |= cudaDeviceMapHost;
  return finish(from_cu(r));
}

extern "C" cudaError_t cudaInitDevice(int device, unsigned int deviceFlags, unsigned int flags) {
  if (flags != 0) return finish(cudaErrorInvalidValue);
  if (const cudaError_t st = device_valid(device); st != cudaSuccess) return finish(st);
  if (const cudaError_t st = driver_ready(); st != cudaSuccess) return finish(st);
  return finish(from_cu(cuDevicePrimaryCtxSetFlags(device, deviceFlags)));
}

extern "C" cudaError_t cudaSetValidDevices(int* deviceArr, int len) {
  if (len < 0 || (len > 0 && !deviceArr)) return finish(cudaErrorInvalidValue);
  for (int i = 0; i < len; ++i)
    if (const cudaError_t st = device_valid(deviceArr[i]); st != cudaSuccess) return finish(st);
  return cudaSuccess;  // only a preference for implicit device choice
}

// Every device of a VM is the same kind of GPU today: the current one fits.
extern "C" cudaError_t cudaChooseDevice(int* device, const cudaDeviceProp* prop) {
  if (!device || !prop) return finish(cudaErrorInvalidValue);
  *device = vgpu::shim::thread_device();
  return cudaSuccess;
}

// Cache configuration is a hint the GPU may ignore (Hopper does for L1/shared
// splits chosen per kernel); the preference is kept and reported back.
namespace {
std::atomic<int> g_cache_config{cudaFuncCachePreferNone};
}
extern "C" cudaError_t cudaDeviceSetCacheConfig(cudaFuncCache cacheConfig) {
  if (cacheConfig < cudaFuncCachePreferNone || cacheConfig > cudaFuncCachePreferEqual)
    return finish(cudaErrorInvalidValue);
  g_cache_config.store(cacheConfig);
  return cudaSuccess;
}

extern "C" cudaError_t cudaDeviceGetCacheConfig(cudaFuncCache* pCacheConfig) {
  if (!pCacheConfig) return finish(cudaErrorInvalidValue);
  *pCacheConfig = static_cast<cudaFuncCache>(g_cache_config.load());
  return cudaSuccess;
}

// Profiler ranges mark a region for a profiler attached to the process; no
// profiler reaches a guest through vgpu, so they mark nothing, as natively
// without one.
extern "C" cudaError_t cudaProfilerStart(void) { return cudaSuccess; }
extern "C" cudaError_t cudaProfilerStop(void) { return cudaSuccess; }
