// Pitched copies (cudaMemcpy2D and its async and per-thread forms). Device to
// device is one posted call the host runs as a 2D copy; copies with host
// memory on one side go through the ordinary copy path, at once when both
// sides are dense (pitch == width), else row by row.
#include <cuda_runtime_api.h>

#include "api_ids.h"
#include "api_wire.h"
#include "shim/cudart/copy.h"
#include "shim/cudart/device_ranges.h"
#include "shim/cudart/last_error.h"
#include "guest_remote.h"
#include "shim/transport/guest_call.h"

namespace vgpu::shim {
namespace {

cudaError_t copy_2d(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                    cudaMemcpyKind kind, cudaStream_t stream, uint32_t flags) {
  if (width == 0 || height == 0) return cudaSuccess;
  if (width > dpitch || width > spitch) return cudaErrorInvalidPitchValue;
  if (!dst || !src) return cudaErrorInvalidValue;
  if (kind == cudaMemcpyDefault) {
    const bool d = is_device_pointer(dst), s = is_device_pointer(src);
    kind = d ? (s ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
             : (s ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost);
  }
  if (kind == cudaMemcpyDeviceToDevice) {
    wire::vgpuMemcpy2DDtoDAsync_req req{};
    req.dst = reinterpret_cast<uint64_t>(dst);
    req.dpitch = dpitch;
    req.src = reinterpret_cast<uint64_t>(src);
    req.spitch = spitch;
    req.width = width;
    req.height = height;
    req.stream = reinterpret_cast<uint64_t>(stream);
    const cudaError_t st = guest_post(static_cast<uint16_t>(protocol::call_id::vgpuMemcpy2DDtoDAsync), &req,
                                      wire::vgpuMemcpy2DDtoDAsync_req::wire_size(), nullptr, 0);
    if (st != cudaSuccess || (flags & kAsync)) return st;
    // The synchronous form returns when the copy is done, as a 1D one does.
    return remote::cudaStreamSynchronize(stream);
  }
  if (dpitch == width && spitch == width) return copy(dst, src, width * height, kind, stream, flags);
  auto* d = static_cast<uint8_t*>(dst);
  const auto* s = static_cast<const uint8_t*>(src);
  for (size_t row = 0; row < height; ++row) {
    if (const cudaError_t st = copy(d + row * dpitch, s + row * spitch, width, kind, stream, flags);
        st != cudaSuccess)
      return st;
  }
  return cudaSuccess;
}

}  // namespace
}  // namespace vgpu::shim

using vgpu::shim::finish;

extern "C" cudaError_t cudaMemcpy2D(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width,
                                    size_t height, cudaMemcpyKind kind) {
  return finish(vgpu::shim::copy_2d(dst, dpitch, src, spitch, width, height, kind, nullptr, 0));
}

extern "C" cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width,
                                         size_t height, cudaMemcpyKind kind, cudaStream_t stream) {
  return finish(
      vgpu::shim::copy_2d(dst, dpitch, src, spitch, width, height, kind, stream, vgpu::shim::kAsync));
}

extern "C" cudaError_t cudaMemcpy2D_ptds(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width,
                                         size_t height, cudaMemcpyKind kind) {
  return finish(vgpu::shim::copy_2d(dst, dpitch, src, spitch, width, height, kind, cudaStreamPerThread, 0));
}

extern "C" cudaError_t cudaMemcpy2DAsync_ptsz(void* dst, size_t dpitch, const void* src, size_t spitch,
                                              size_t width, size_t height, cudaMemcpyKind kind,
                                              cudaStream_t stream) {
  return finish(vgpu::shim::copy_2d(dst, dpitch, src, spitch, width, height, kind,
                                    stream ? stream : cudaStreamPerThread, vgpu::shim::kAsync));
}
