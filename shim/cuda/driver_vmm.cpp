// Virtual memory management (cuMemCreate, cuMemAddressReserve, cuMemMap,
// cuMemSetAccess, ...), done for real on the host: llama.cpp's and Ollama's
// VMM memory pools reserve address space once and map physical chunks into it
// as they grow. Every structure the caller passes is read here and only its
// values travel; the host validates each range against the session's own
// reservations and mappings.
#include <cuda.h>

#include "guest_remote.h"
#include "shim/cuda/driver_common.h"
#include "shim/transport/device_ranges.h"

using vgpu::shim::to_cu;

namespace {

// vgpu serves plain device memory: pinned, on a device, not exportable (an OS
// handle of the host could not reach the guest), no compression or RDMA.
CUresult supported(const CUmemAllocationProp* prop) {
  if (!prop) return CUDA_ERROR_INVALID_VALUE;
  if (prop->type != CU_MEM_ALLOCATION_TYPE_PINNED || prop->location.type != CU_MEM_LOCATION_TYPE_DEVICE) {
    return CUDA_ERROR_INVALID_VALUE;
  }
  if (prop->requestedHandleTypes != CU_MEM_HANDLE_TYPE_NONE || prop->allocFlags.compressionType != 0 ||
      prop->allocFlags.gpuDirectRDMACapable != 0) {
    return CUDA_ERROR_NOT_SUPPORTED;
  }
  return CUDA_SUCCESS;
}

}  // namespace

extern "C" CUresult cuMemGetAllocationGranularity(size_t* granularity, const CUmemAllocationProp* prop,
                                                  CUmemAllocationGranularity_flags option) {
  VGPU_REQUIRE_INIT();
  if (!granularity || !prop || prop->location.type != CU_MEM_LOCATION_TYPE_DEVICE) return CUDA_ERROR_INVALID_VALUE;
  unsigned long long g = 0;
  const cudaError_t st = vgpu::remote::vgpuMemGetAllocationGranularity(&g, prop->location.id, option);
  if (st == cudaSuccess) *granularity = g;
  return to_cu(st);
}

extern "C" CUresult cuMemCreate(CUmemGenericAllocationHandle* handle, size_t size, const CUmemAllocationProp* prop,
                                unsigned long long flags) {
  VGPU_REQUIRE_INIT();
  if (!handle || flags != 0 || size == 0) return CUDA_ERROR_INVALID_VALUE;
  if (const CUresult r = supported(prop); r != CUDA_SUCCESS) return r;
  unsigned long long h = 0;
  const cudaError_t st = vgpu::remote::vgpuMemCreate(&h, size, prop->location.id);
  if (st == cudaSuccess) *handle = h;
  return to_cu(st);
}

extern "C" CUresult cuMemRelease(CUmemGenericAllocationHandle handle) {
  VGPU_REQUIRE_INIT();
  return to_cu(vgpu::remote::vgpuMemRelease(handle));
}

extern "C" CUresult cuMemAddressReserve(CUdeviceptr* ptr, size_t size, size_t alignment, CUdeviceptr addr,
                                        unsigned long long flags) {
  VGPU_REQUIRE_INIT();
  if (!ptr || size == 0 || flags != 0) return CUDA_ERROR_INVALID_VALUE;
  unsigned long long p = 0;
  const cudaError_t st = vgpu::remote::vgpuMemAddressReserve(&p, size, alignment, addr);
  if (st == cudaSuccess) *ptr = p;
  return to_cu(st);
}

extern "C" CUresult cuMemAddressFree(CUdeviceptr ptr, size_t size) {
  VGPU_REQUIRE_INIT();
  return to_cu(vgpu::remote::vgpuMemAddressFree(ptr, size));
}

extern "C" CUresult cuMemMap(CUdeviceptr ptr, size_t size, size_t offset, CUmemGenericAllocationHandle handle,
                             unsigned long long flags) {
  VGPU_REQUIRE_INIT();
  if (flags != 0) return CUDA_ERROR_INVALID_VALUE;
  const cudaError_t st = vgpu::remote::vgpuMemMap(ptr, size, offset, handle);
  if (st == cudaSuccess) vgpu::shim::remember_device_range(ptr, size);  // cudaMemcpyDefault knows it
  return to_cu(st);
}

extern "C" CUresult cuMemUnmap(CUdeviceptr ptr, size_t size) {
  VGPU_REQUIRE_INIT();
  const cudaError_t st = vgpu::remote::vgpuMemUnmap(ptr, size);
  if (st == cudaSuccess) vgpu::shim::forget_device_ranges_in(ptr, size);
  return to_cu(st);
}

extern "C" CUresult cuMemSetAccess(CUdeviceptr ptr, size_t size, const CUmemAccessDesc* desc, size_t count) {
  VGPU_REQUIRE_INIT();
  if (!desc || count == 0) return CUDA_ERROR_INVALID_VALUE;
  // One descriptor per call: each names one device's access to the range.
  for (size_t i = 0; i < count; ++i) {
    if (desc[i].location.type != CU_MEM_LOCATION_TYPE_DEVICE) return CUDA_ERROR_INVALID_VALUE;
  }
  for (size_t i = 0; i < count; ++i) {
    const cudaError_t st = vgpu::remote::vgpuMemSetAccess(ptr, size, desc[i].location.id, desc[i].flags);
    if (st != cudaSuccess) return to_cu(st);
  }
  return CUDA_SUCCESS;
}

extern "C" CUresult cuMemGetAccess(unsigned long long* flags, const CUmemLocation* location, CUdeviceptr ptr) {
  VGPU_REQUIRE_INIT();
  if (!flags || !location || location->type != CU_MEM_LOCATION_TYPE_DEVICE) return CUDA_ERROR_INVALID_VALUE;
  unsigned long long f = 0;
  const cudaError_t st = vgpu::remote::vgpuMemGetAccess(&f, ptr, location->id);
  if (st == cudaSuccess) *flags = f;
  return to_cu(st);
}
