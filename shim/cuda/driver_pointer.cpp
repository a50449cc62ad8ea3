// Pointer attributes: what the session's own tables say about an address
// (vgpuPointerGetAttributes: allocations, module variables, VMM mappings).
// Guest host memory is not device memory the driver knows of: the driver's
// answer for an unregistered pointer.
#include <cstring>

#include <cuda.h>

#include "guest_remote.h"
#include "shim/cuda/driver_common.h"

using vgpu::shim::to_cu;

namespace {

struct pointer_info {
  unsigned type = 0;  // CUmemorytype; 0 = not device memory of this session
  unsigned long long base = 0;
  unsigned long long size = 0;
  int device = -1;
};

CUresult query(CUdeviceptr ptr, pointer_info* info) {
  return to_cu(vgpu::remote::vgpuPointerGetAttributes(&info->type, &info->base, &info->size, &info->device, ptr));
}

template <typename T>
void put(void* data, T value) {
  std::memcpy(data, &value, sizeof value);
}

// One attribute of a device pointer (info.type != 0). Booleans are written as
// bool, as cuda.h documents them ("a boolean").
CUresult answer(CUpointer_attribute attribute, CUdeviceptr ptr, const pointer_info& info, void* data) {
  switch (attribute) {
    case CU_POINTER_ATTRIBUTE_CONTEXT: put(data, vgpu::shim::context_of_device(info.device)); break;
    case CU_POINTER_ATTRIBUTE_MEMORY_TYPE: put(data, static_cast<unsigned>(CU_MEMORYTYPE_DEVICE)); break;
    case CU_POINTER_ATTRIBUTE_DEVICE_POINTER: put(data, ptr); break;
    case CU_POINTER_ATTRIBUTE_HOST_POINTER: return CUDA_ERROR_INVALID_VALUE;  // device memory is not mapped to the host
    case CU_POINTER_ATTRIBUTE_BUFFER_ID: put(data, static_cast<unsigned long long>(info.base)); break;
    case CU_POINTER_ATTRIBUTE_IS_MANAGED: put(data, false); break;
    case CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL: put(data, info.device); break;
    case CU_POINTER_ATTRIBUTE_IS_LEGACY_CUDA_IPC_CAPABLE: put(data, false); break;
    case CU_POINTER_ATTRIBUTE_RANGE_START_ADDR: put(data, static_cast<CUdeviceptr>(info.base)); break;
    case CU_POINTER_ATTRIBUTE_RANGE_SIZE: put(data, static_cast<size_t>(info.size)); break;
    case CU_POINTER_ATTRIBUTE_MAPPED: put(data, true); break;
    case CU_POINTER_ATTRIBUTE_ALLOWED_HANDLE_TYPES: put(data, 0ull); break;
    case CU_POINTER_ATTRIBUTE_IS_GPU_DIRECT_RDMA_CAPABLE: put(data, false); break;
    case CU_POINTER_ATTRIBUTE_ACCESS_FLAGS:
      put(data, static_cast<int>(CU_POINTER_ATTRIBUTE_ACCESS_FLAG_READWRITE));
      break;
    case CU_POINTER_ATTRIBUTE_MEMPOOL_HANDLE: put(data, static_cast<CUmemoryPool>(nullptr)); break;
    default: return CUDA_ERROR_INVALID_VALUE;  // P2P tokens, sync memops, ...: not served
  }
  return CUDA_SUCCESS;
}

}  // namespace

extern "C" CUresult cuPointerGetAttribute(void* data, CUpointer_attribute attribute, CUdeviceptr ptr) {
  VGPU_REQUIRE_INIT();
  if (!data) return CUDA_ERROR_INVALID_VALUE;
  pointer_info info;
  if (const CUresult r = query(ptr, &info); r != CUDA_SUCCESS) return r;
  // The driver's answer for memory it does not know.
  if (info.type == 0) return CUDA_ERROR_INVALID_VALUE;
  return answer(attribute, ptr, info, data);
}

// Unlike cuPointerGetAttribute, an unknown pointer is no error: its
// attributes read as zeros (memory type 0).
extern "C" CUresult cuPointerGetAttributes(unsigned int numAttributes, CUpointer_attribute* attributes, void** data,
                                           CUdeviceptr ptr) {
  VGPU_REQUIRE_INIT();
  if (numAttributes == 0 || !attributes || !data) return CUDA_ERROR_INVALID_VALUE;
  pointer_info info;
  if (const CUresult r = query(ptr, &info); r != CUDA_SUCCESS) return r;
  for (unsigned i = 0; i < numAttributes; ++i) {
    if (!data[i]) continue;
    if (info.type == 0) {
      switch (attributes[i]) {
        case CU_POINTER_ATTRIBUTE_CONTEXT: put(data[i], static_cast<CUcontext>(nullptr)); break;
        case CU_POINTER_ATTRIBUTE_MEMORY_TYPE: put(data[i], 0u); break;
        case CU_POINTER_ATTRIBUTE_DEVICE_POINTER:
        case CU_POINTER_ATTRIBUTE_RANGE_START_ADDR: put(data[i], CUdeviceptr{0}); break;
        case CU_POINTER_ATTRIBUTE_HOST_POINTER: put(data[i], static_cast<void*>(nullptr)); break;
        case CU_POINTER_ATTRIBUTE_DEVICE_ORDINAL: put(data[i], -2); break;
        case CU_POINTER_ATTRIBUTE_RANGE_SIZE: put(data[i], size_t{0}); break;
        case CU_POINTER_ATTRIBUTE_IS_MANAGED:
        case CU_POINTER_ATTRIBUTE_MAPPED: put(data[i], false); break;
        default: break;
      }
      continue;
    }
    if (attributes[i] == CU_POINTER_ATTRIBUTE_HOST_POINTER) {
      put(data[i], static_cast<void*>(nullptr));
      continue;
    }
    if (const CUresult r = answer(attributes[i], ptr, info, data[i]); r != CUDA_SUCCESS) return r;
  }
  return CUDA_SUCCESS;
}
