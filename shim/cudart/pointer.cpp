// cudaPointerGetAttributes and the runtime's door to the driver's entry
// points (cudaGetDriverEntryPoint*), which are libcuda.so.1's own functions.
#include <cstring>

#include <cuda.h>
#include <cuda_runtime_api.h>

#include "guest_remote.h"
#include "shim/cudart/device_ranges.h"
#include "shim/cudart/last_error.h"
#include "shim/transport/guest_call.h"

using vgpu::shim::finish;

// Device memory: what the session's tables say (allocations, module
// variables, VMM mappings). Host memory: cudaMallocHost'd buffers are Host,
// anything else the guest owns is Unregistered, as NVIDIA's runtime says.
extern "C" cudaError_t cudaPointerGetAttributes(cudaPointerAttributes* attributes, const void* ptr) {
  if (!attributes) return finish(cudaErrorInvalidValue);
  unsigned type = 0;
  unsigned long long base = 0, size = 0;
  int device = -1;
  const cudaError_t st =
      vgpu::remote::vgpuPointerGetAttributes(&type, &base, &size, &device, reinterpret_cast<uint64_t>(ptr));
  if (st != cudaSuccess) return finish(st);
  std::memset(static_cast<void*>(attributes), 0, sizeof *attributes);
  if (type == CU_MEMORYTYPE_DEVICE) {
    attributes->type = cudaMemoryTypeDevice;
    attributes->device = device;
    attributes->devicePointer = const_cast<void*>(ptr);
    attributes->hostPointer = nullptr;
  } else if (ptr && (vgpu::shim::is_pinned_host_pointer(ptr) || vgpu::shim::is_registered_host_pointer(ptr))) {
    // Pinned and, with unified addressing, reachable from the device at the
    // same address.
    attributes->type = cudaMemoryTypeHost;
    attributes->device = vgpu::shim::thread_device();
    attributes->devicePointer = const_cast<void*>(ptr);
    attributes->hostPointer = const_cast<void*>(ptr);
  } else {
    attributes->type = cudaMemoryTypeUnregistered;
    attributes->device = cudaInvalidDeviceId;
    attributes->devicePointer = nullptr;
    attributes->hostPointer = nullptr;
  }
  return cudaSuccess;
}

// cudaEnable* flags and cudaDriverEntryPointQueryResult share their values
// with cuGetProcAddress's flags and CUdriverProcAddressQueryResult.
extern "C" cudaError_t cudaGetDriverEntryPointByVersion(const char* symbol, void** funcPtr, unsigned int cudaVersion,
                                                        unsigned long long flags,
                                                        cudaDriverEntryPointQueryResult* driverStatus) {
  if (!symbol || !funcPtr) return finish(cudaErrorInvalidValue);
  CUdriverProcAddressQueryResult status = CU_GET_PROC_ADDRESS_SUCCESS;
  const CUresult r = cuGetProcAddress(symbol, funcPtr, static_cast<int>(cudaVersion), flags, &status);
  if (r != CUDA_SUCCESS) return finish(cudaErrorInvalidValue);
  if (driverStatus) *driverStatus = static_cast<cudaDriverEntryPointQueryResult>(status);
  // Without a status to read, a missing symbol is the call's error.
  if (!driverStatus && status != CU_GET_PROC_ADDRESS_SUCCESS) return finish(cudaErrorSymbolNotFound);
  return cudaSuccess;
}

extern "C" cudaError_t cudaGetDriverEntryPointByVersion_ptsz(const char* symbol, void** funcPtr,
                                                             unsigned int cudaVersion, unsigned long long flags,
                                                             cudaDriverEntryPointQueryResult* driverStatus) {
  return cudaGetDriverEntryPointByVersion(symbol, funcPtr, cudaVersion, flags, driverStatus);
}

// The runtime's own version picks the entry point (as NVIDIA's runtime does).
extern "C" cudaError_t cudaGetDriverEntryPoint(const char* symbol, void** funcPtr, unsigned long long flags,
                                               cudaDriverEntryPointQueryResult* driverStatus) {
  return cudaGetDriverEntryPointByVersion(symbol, funcPtr, CUDART_VERSION, flags, driverStatus);
}

extern "C" cudaError_t cudaGetDriverEntryPoint_ptsz(const char* symbol, void** funcPtr, unsigned long long flags,
                                                    cudaDriverEntryPointQueryResult* driverStatus) {
  return cudaGetDriverEntryPointByVersion(symbol, funcPtr, CUDART_VERSION, flags, driverStatus);
}
