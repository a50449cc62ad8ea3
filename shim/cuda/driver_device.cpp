// cuInit, versions and devices: answered from the runtime's wire calls
// (device count, properties, attributes), so the driver and the runtime view
// of a device can never disagree.
#include <atomic>
#include <cstdio>
#include <cstring>

#include <cuda.h>

#include "guest_remote.h"
#include "shim/cuda/driver_common.h"
#include "shim/transport/guest_call.h"

namespace vgpu::shim {
namespace {
std::atomic<bool> g_initialised{false};

CUresult device_props(CUdevice dev, cudaDeviceProp* p) {
  int count = 0;
  if (const cudaError_t st = remote::cudaGetDeviceCount(&count); st != cudaSuccess) return to_cu(st);
  if (dev < 0 || dev >= count) return CUDA_ERROR_INVALID_DEVICE;
  return to_cu(remote::cudaGetDeviceProperties(p, dev));
}
}  // namespace

// The runtime initialises the driver on its first call, as NVIDIA's does
// (PyTorch uses the driver API after the runtime without calling cuInit).
bool driver_initialised() {
  return g_initialised.load(std::memory_order_acquire) || channel_connected();
}

}  // namespace vgpu::shim

using vgpu::shim::to_cu;

extern "C" CUresult cuInit(unsigned int flags) {
  if (flags != 0) return CUDA_ERROR_INVALID_VALUE;
  int count = 0;
  // Reaching the mediator is what initialising means here.
  const cudaError_t st = vgpu::remote::cudaGetDeviceCount(&count);
  if (st != cudaSuccess) return to_cu(st);
  if (count == 0) return CUDA_ERROR_NO_DEVICE;
  vgpu::shim::g_initialised.store(true, std::memory_order_release);
  return CUDA_SUCCESS;
}

extern "C" CUresult cuDriverGetVersion(int* driverVersion) {
  if (!driverVersion) return CUDA_ERROR_INVALID_VALUE;
  return to_cu(vgpu::remote::cudaDriverGetVersion(driverVersion));
}

extern "C" CUresult cuDeviceGetCount(int* count) {
  VGPU_REQUIRE_INIT();
  if (!count) return CUDA_ERROR_INVALID_VALUE;
  return to_cu(vgpu::remote::cudaGetDeviceCount(count));
}

extern "C" CUresult cuDeviceGet(CUdevice* device, int ordinal) {
  VGPU_REQUIRE_INIT();
  if (!device) return CUDA_ERROR_INVALID_VALUE;
  int count = 0;
  if (const cudaError_t st = vgpu::remote::cudaGetDeviceCount(&count); st != cudaSuccess) return to_cu(st);
  if (ordinal < 0 || ordinal >= count) return CUDA_ERROR_INVALID_DEVICE;
  *device = ordinal;
  return CUDA_SUCCESS;
}

extern "C" CUresult cuDeviceGetName(char* name, int len, CUdevice dev) {
  VGPU_REQUIRE_INIT();
  if (!name || len <= 0) return CUDA_ERROR_INVALID_VALUE;
  cudaDeviceProp p;
  if (const CUresult r = vgpu::shim::device_props(dev, &p); r != CUDA_SUCCESS) return r;
  std::snprintf(name, static_cast<size_t>(len), "%s", p.name);
  return CUDA_SUCCESS;
}

extern "C" CUresult cuDeviceTotalMem(size_t* bytes, CUdevice dev) {  // cuDeviceTotalMem_v2
  VGPU_REQUIRE_INIT();
  if (!bytes) return CUDA_ERROR_INVALID_VALUE;
  cudaDeviceProp p;
  if (const CUresult r = vgpu::shim::device_props(dev, &p); r != CUDA_SUCCESS) return r;
  *bytes = p.totalGlobalMem;
  return CUDA_SUCCESS;
}

extern "C" CUresult cuDeviceGetUuid(CUuuid* uuid, CUdevice dev) {  // cuDeviceGetUuid_v2
  VGPU_REQUIRE_INIT();
  if (!uuid) return CUDA_ERROR_INVALID_VALUE;
  cudaDeviceProp p;
  if (const CUresult r = vgpu::shim::device_props(dev, &p); r != CUDA_SUCCESS) return r;
  static_assert(sizeof(uuid->bytes) == sizeof(p.uuid.bytes), "CUuuid and cudaUUID_t are the same 16 bytes");
  std::memcpy(uuid->bytes, p.uuid.bytes, sizeof uuid->bytes);
  return CUDA_SUCCESS;
}

extern "C" CUresult cuDeviceGetPCIBusId(char* pciBusId, int len, CUdevice dev) {
  VGPU_REQUIRE_INIT();
  if (!pciBusId || len <= 0) return CUDA_ERROR_INVALID_VALUE;
  cudaDeviceProp p;
  if (const CUresult r = vgpu::shim::device_props(dev, &p); r != CUDA_SUCCESS) return r;
  std::snprintf(pciBusId, static_cast<size_t>(len), "%08x:%02x:%02x.0", p.pciDomainID, p.pciBusID, p.pciDeviceID);
  return CUDA_SUCCESS;
}

extern "C" CUresult cuDeviceGetAttribute(int* pi, CUdevice_attribute attrib, CUdevice dev) {
  VGPU_REQUIRE_INIT();
  if (!pi) return CUDA_ERROR_INVALID_VALUE;
  // vgpu serves cuMemCreate/cuMemMap for real (driver_vmm.cpp), whatever the
  // runtime's attribute list says (cudaDeviceAttr has no such entry).
  if (attrib == CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED) {
    int count = 0;
    if (const cudaError_t st = vgpu::remote::cudaGetDeviceCount(&count); st != cudaSuccess) return to_cu(st);
    if (dev < 0 || dev >= count) return CUDA_ERROR_INVALID_DEVICE;
    *pi = 1;
    return CUDA_SUCCESS;
  }
  // Shareable OS handles of cuMemCreate'd memory cannot reach the guest
  // (driver_vmm.cpp refuses to create them): say so, so that a program
  // (PyTorch's expandable segments) asks for none.
  if (attrib == CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_POSIX_FILE_DESCRIPTOR_SUPPORTED ||
      attrib == CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_WIN32_HANDLE_SUPPORTED ||
      attrib == CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_WIN32_KMT_HANDLE_SUPPORTED ||
      attrib == CU_DEVICE_ATTRIBUTE_HANDLE_TYPE_FABRIC_SUPPORTED) {
    int count = 0;
    if (const cudaError_t st = vgpu::remote::cudaGetDeviceCount(&count); st != cudaSuccess) return to_cu(st);
    if (dev < 0 || dev >= count) return CUDA_ERROR_INVALID_DEVICE;
    *pi = 0;
    return CUDA_SUCCESS;
  }
  // CUdevice_attribute and cudaDeviceAttr share their numbering.
  return to_cu(vgpu::remote::cudaDeviceGetAttribute(pi, static_cast<cudaDeviceAttr>(attrib), dev));
}
