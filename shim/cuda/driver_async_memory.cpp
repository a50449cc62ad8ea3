// The driver API's stream-ordered copies and memsets, the unified cuMemcpy,
// and 16/32-bit memsets: the runtime's wire calls again (pipelined data-area
// copies for host memory, posted calls for what carries no host bytes).
#include <cstring>

#include <cuda.h>

#include "api_ids.h"
#include "api_wire.h"
#include "guest_remote.h"
#include "shim/cuda/driver_common.h"
#include "shim/transport/bulk_copy.h"
#include "shim/transport/device_ranges.h"
#include "shim/transport/guest_call.h"

using vgpu::shim::to_cu;

namespace {

constexpr uint32_t kAsync = 1;  // flags bit 0 of the copy calls (protocol/api/cudart.api)

uint64_t stream_id(CUstream s) { return reinterpret_cast<uint64_t>(s); }

CUresult post_dtod(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s) {
  vgpu::wire::vgpuMemcpyDtoDAsync_req req{};
  req.dst = dst;
  req.src = src;
  req.count = n;
  req.stream = stream_id(s);
  return to_cu(vgpu::shim::guest_post(static_cast<uint16_t>(vgpu::protocol::call_id::vgpuMemcpyDtoDAsync), &req,
                                      vgpu::wire::vgpuMemcpyDtoDAsync_req::wire_size(), nullptr, 0));
}

// A memset of `count` elements of `size` bytes with `value`; a pattern whose
// bytes are all equal is the byte memset the host already has.
CUresult post_memset(CUdeviceptr dst, uint32_t value, uint32_t size, size_t count, CUstream s) {
  if (count == 0) return CUDA_SUCCESS;
  if ((dst % size) != 0) return CUDA_ERROR_INVALID_VALUE;  // as the driver: elements aligned
  const uint8_t low = static_cast<uint8_t>(value);
  bool bytewise = true;
  for (uint32_t i = 1; i < size; ++i) bytewise = bytewise && static_cast<uint8_t>(value >> (8 * i)) == low;
  if (bytewise) {
    vgpu::wire::vgpuMemsetAsync_req req{};
    req.dst = dst;
    req.value = low;
    req.count = count * size;
    req.stream = stream_id(s);
    return to_cu(vgpu::shim::guest_post(static_cast<uint16_t>(vgpu::protocol::call_id::vgpuMemsetAsync), &req,
                                        vgpu::wire::vgpuMemsetAsync_req::wire_size(), nullptr, 0));
  }
  vgpu::wire::vgpuMemsetElem_req req{};
  req.dst = dst;
  req.value = value;
  req.elemSize = size;
  req.count = count;
  req.stream = stream_id(s);
  return to_cu(vgpu::shim::guest_post(static_cast<uint16_t>(vgpu::protocol::call_id::vgpuMemsetElem), &req,
                                      vgpu::wire::vgpuMemsetElem_req::wire_size(), nullptr, 0));
}

// The synchronous forms: posted, then the legacy stream is waited for (which
// also reports an error the posted call left).
CUresult then_wait(CUresult posted) {
  if (posted != CUDA_SUCCESS) return posted;
  return to_cu(vgpu::remote::cudaStreamSynchronize(nullptr));
}

// cuMemcpy's unified addresses: a device range of this process, or host memory.
CUresult unified_copy(CUdeviceptr dst, CUdeviceptr src, size_t n, CUstream s, uint32_t flags) {
  if (n == 0) return CUDA_SUCCESS;
  const bool d = vgpu::shim::is_device_pointer(reinterpret_cast<const void*>(dst));
  const bool h = !vgpu::shim::is_device_pointer(reinterpret_cast<const void*>(src));
  if (!dst || !src) return CUDA_ERROR_INVALID_VALUE;
  if (d && !h) {
    const CUresult r = post_dtod(dst, src, n, s);
    return (flags & kAsync) ? r : then_wait(r);
  }
  if (d) return to_cu(vgpu::shim::copy_to_device(dst, reinterpret_cast<const uint8_t*>(src), n, stream_id(s), flags));
  if (!h) return to_cu(vgpu::shim::copy_from_device(reinterpret_cast<uint8_t*>(dst), src, n, stream_id(s), flags));
  std::memmove(reinterpret_cast<void*>(dst), reinterpret_cast<const void*>(src), n);
  return CUDA_SUCCESS;
}

}  // namespace

extern "C" CUresult cuMemcpyHtoDAsync(CUdeviceptr dstDevice, const void* srcHost, size_t ByteCount,
                                      CUstream hStream) {  // _v2
  VGPU_REQUIRE_INIT();
  if (ByteCount == 0) return CUDA_SUCCESS;
  if (!srcHost) return CUDA_ERROR_INVALID_VALUE;
  return to_cu(vgpu::shim::copy_to_device(dstDevice, static_cast<const uint8_t*>(srcHost), ByteCount,
                                          stream_id(hStream), kAsync));
}

extern "C" CUresult cuMemcpyDtoHAsync(void* dstHost, CUdeviceptr srcDevice, size_t ByteCount,
                                      CUstream hStream) {  // _v2
  VGPU_REQUIRE_INIT();
  if (ByteCount == 0) return CUDA_SUCCESS;
  if (!dstHost) return CUDA_ERROR_INVALID_VALUE;
  return to_cu(vgpu::shim::copy_from_device(static_cast<uint8_t*>(dstHost), srcDevice, ByteCount,
                                            stream_id(hStream), kAsync));
}

extern "C" CUresult cuMemcpyDtoDAsync(CUdeviceptr dstDevice, CUdeviceptr srcDevice, size_t ByteCount,
                                      CUstream hStream) {  // _v2
  VGPU_REQUIRE_INIT();
  if (ByteCount == 0) return CUDA_SUCCESS;
  return post_dtod(dstDevice, srcDevice, ByteCount, hStream);
}

extern "C" CUresult cuMemcpy(CUdeviceptr dst, CUdeviceptr src, size_t ByteCount) {
  VGPU_REQUIRE_INIT();
  return unified_copy(dst, src, ByteCount, nullptr, 0);
}

extern "C" CUresult cuMemcpyAsync(CUdeviceptr dst, CUdeviceptr src, size_t ByteCount, CUstream hStream) {
  VGPU_REQUIRE_INIT();
  return unified_copy(dst, src, ByteCount, hStream, kAsync);
}

extern "C" CUresult cuMemsetD8Async(CUdeviceptr dstDevice, unsigned char uc, size_t N, CUstream hStream) {
  VGPU_REQUIRE_INIT();
  return post_memset(dstDevice, uc, 1, N, hStream);
}

extern "C" CUresult cuMemsetD16(CUdeviceptr dstDevice, unsigned short us, size_t N) {  // _v2
  VGPU_REQUIRE_INIT();
  if (N == 0) return CUDA_SUCCESS;
  return then_wait(post_memset(dstDevice, us, 2, N, nullptr));
}

extern "C" CUresult cuMemsetD16Async(CUdeviceptr dstDevice, unsigned short us, size_t N, CUstream hStream) {
  VGPU_REQUIRE_INIT();
  return post_memset(dstDevice, us, 2, N, hStream);
}

extern "C" CUresult cuMemsetD32(CUdeviceptr dstDevice, unsigned int ui, size_t N) {  // _v2
  VGPU_REQUIRE_INIT();
  if (N == 0) return CUDA_SUCCESS;
  return then_wait(post_memset(dstDevice, ui, 4, N, nullptr));
}

extern "C" CUresult cuMemsetD32Async(CUdeviceptr dstDevice, unsigned int ui, size_t N, CUstream hStream) {
  VGPU_REQUIRE_INIT();
  return post_memset(dstDevice, ui, 4, N, hStream);
}
