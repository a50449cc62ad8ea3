// Device memory and copies through the driver API: the same wire calls and
// the same pipelined data-area copies as the runtime's.
#include <cuda.h>

#include "api_ids.h"
#include "api_wire.h"
#include "guest_remote.h"
#include "shim/cuda/driver_common.h"
#include "shim/transport/bulk_copy.h"
#include "shim/transport/device_ranges.h"
#include "shim/transport/guest_call.h"

using vgpu::shim::to_cu;

extern "C" CUresult cuMemAlloc(CUdeviceptr* dptr, size_t bytesize) {  // cuMemAlloc_v2
  VGPU_REQUIRE_INIT();
  if (!dptr || bytesize == 0) return CUDA_ERROR_INVALID_VALUE;  // the driver refuses 0 bytes
  void* p = nullptr;
  const cudaError_t st = vgpu::remote::cudaMalloc(&p, bytesize);
  if (st == cudaSuccess) {
    *dptr = reinterpret_cast<CUdeviceptr>(p);
    vgpu::shim::remember_device_range(*dptr, bytesize);  // cudaMemcpyDefault knows it
  }
  return to_cu(st);
}

extern "C" CUresult cuMemFree(CUdeviceptr dptr) {  // cuMemFree_v2
  VGPU_REQUIRE_INIT();
  if (dptr == 0) return CUDA_ERROR_INVALID_VALUE;
  const cudaError_t st = vgpu::remote::cudaFree(reinterpret_cast<void*>(dptr));
  if (st == cudaSuccess) vgpu::shim::forget_device_range(dptr);
  return to_cu(st);
}

extern "C" CUresult cuMemGetInfo(size_t* free, size_t* total) {  // cuMemGetInfo_v2
  VGPU_REQUIRE_INIT();
  return to_cu(vgpu::remote::cudaMemGetInfo(free, total));
}

extern "C" CUresult cuMemcpyHtoD(CUdeviceptr dstDevice, const void* srcHost, size_t ByteCount) {  // _v2
  VGPU_REQUIRE_INIT();
  if (ByteCount == 0) return CUDA_SUCCESS;
  if (!srcHost) return CUDA_ERROR_INVALID_VALUE;
  return to_cu(vgpu::shim::copy_to_device(dstDevice, static_cast<const uint8_t*>(srcHost), ByteCount, 0, 0));
}

extern "C" CUresult cuMemcpyDtoH(void* dstHost, CUdeviceptr srcDevice, size_t ByteCount) {  // _v2
  VGPU_REQUIRE_INIT();
  if (ByteCount == 0) return CUDA_SUCCESS;
  if (!dstHost) return CUDA_ERROR_INVALID_VALUE;
  return to_cu(vgpu::shim::copy_from_device(static_cast<uint8_t*>(dstHost), srcDevice, ByteCount, 0, 0));
}

extern "C" CUresult cuMemcpyDtoD(CUdeviceptr dstDevice, CUdeviceptr srcDevice, size_t ByteCount) {  // _v2
  VGPU_REQUIRE_INIT();
  if (ByteCount == 0) return CUDA_SUCCESS;
  vgpu::wire::vgpuMemcpyDtoD_req req{};
  req.dst = dstDevice;
  req.src = srcDevice;
  req.count = ByteCount;
  return to_cu(vgpu::shim::guest_call(static_cast<uint16_t>(vgpu::protocol::call_id::vgpuMemcpyDtoD), &req,
                                      vgpu::wire::vgpuMemcpyDtoD_req::wire_size(), nullptr, 0, 0));
}

extern "C" CUresult cuMemsetD8(CUdeviceptr dstDevice, unsigned char uc, size_t N) {  // _v2
  VGPU_REQUIRE_INIT();
  if (N == 0) return CUDA_SUCCESS;
  vgpu::wire::vgpuMemset_req req{};
  req.dst = dstDevice;
  req.value = uc;
  req.count = N;
  return to_cu(vgpu::shim::guest_call(static_cast<uint16_t>(vgpu::protocol::call_id::vgpuMemset), &req,
                                      vgpu::wire::vgpuMemset_req::wire_size(), nullptr, 0, 0));
}

// Stream-ordered allocation on the host's default pool (vgpuMallocAsync /
// vgpuFreeAsync, as the runtime's cudaMallocAsync / cudaFreeAsync).
extern "C" CUresult cuMemAllocAsync(CUdeviceptr* dptr, size_t bytesize, CUstream hStream) {
  VGPU_REQUIRE_INIT();
  if (!dptr || bytesize == 0) return CUDA_ERROR_INVALID_VALUE;
  unsigned long long p = 0;
  const cudaError_t st = vgpu::remote::vgpuMallocAsync(&p, bytesize, reinterpret_cast<cudaStream_t>(hStream));
  if (st == cudaSuccess) {
    *dptr = p;
    vgpu::shim::remember_device_range(p, bytesize);
  }
  return to_cu(st);
}

extern "C" CUresult cuMemFreeAsync(CUdeviceptr dptr, CUstream hStream) {
  VGPU_REQUIRE_INIT();
  if (dptr == 0) return CUDA_ERROR_INVALID_VALUE;
  vgpu::shim::forget_device_range(dptr);
  return to_cu(vgpu::remote::vgpuFreeAsync(dptr, reinterpret_cast<cudaStream_t>(hStream)));
}
