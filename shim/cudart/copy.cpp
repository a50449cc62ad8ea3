// Copies and memsets. Bulk data travels through the channel's data area in
// chunks, pipelined: while the host copies chunk k, the guest fills (H2D) or
// drains (D2H) another slot. Device-to-device copies and memsets carry no data.
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <deque>

#include <cuda_runtime_api.h>

#include "api_ids.h"
#include "api_wire.h"
#include "shim/cudart/capture_state.h"
#include "shim/cudart/copy.h"
#include "shim/transport/bulk_copy.h"
#include "shim/cudart/device_ranges.h"
#include "shim/cudart/last_error.h"
#include "shim/transport/guest_call.h"

namespace vgpu::shim {

namespace {

using protocol::call_id;

uint64_t handle(cudaStream_t s) { return reinterpret_cast<uint64_t>(s); }

}  // namespace

cudaError_t copy(void* dst, const void* src, size_t count, cudaMemcpyKind kind, cudaStream_t stream,
                 uint32_t flags) {
  if (count == 0) return cudaSuccess;
  if (kind == cudaMemcpyDefault) {
    const bool d = is_device_pointer(dst), s = is_device_pointer(src);
    kind = d ? (s ? cudaMemcpyDeviceToDevice : cudaMemcpyHostToDevice)
             : (s ? cudaMemcpyDeviceToHost : cudaMemcpyHostToHost);
  }
  // The guest never dereferences a device address as host memory: a kind
  // that contradicts the pointers is refused (H2D/D2H) or corrected (H2H),
  // as NVIDIA's runtime does with unified addressing.
  if (kind == cudaMemcpyHostToHost && (is_device_pointer(dst) || is_device_pointer(src)))
    return copy(dst, src, count, cudaMemcpyDefault, stream, flags);
  if ((kind == cudaMemcpyHostToDevice && is_device_pointer(src)) ||
      (kind == cudaMemcpyDeviceToHost && is_device_pointer(dst)))
    return cudaErrorInvalidValue;
  if ((kind == cudaMemcpyHostToHost || kind == cudaMemcpyHostToDevice) && !src) return cudaErrorInvalidValue;
  if ((kind == cudaMemcpyHostToHost || kind == cudaMemcpyDeviceToHost) && !dst) return cudaErrorInvalidValue;
  // A capture would hold a pointer into the shared data area, which the next
  // call reuses: refused, as CUDA refuses pageable memory in a capture.
  if (kind == cudaMemcpyHostToDevice || kind == cudaMemcpyDeviceToHost)
    if (cudaError_t refused = refuse_in_capture(stream); refused != cudaSuccess) return refused;
  const auto d = reinterpret_cast<uint64_t>(dst);
  const auto s = reinterpret_cast<uint64_t>(src);
  switch (kind) {
    case cudaMemcpyHostToHost:
      std::memmove(dst, src, count);
      return cudaSuccess;
    case cudaMemcpyHostToDevice:
      return copy_to_device(d, static_cast<const uint8_t*>(src), count, handle(stream), flags);
    case cudaMemcpyDeviceToHost:
      return copy_from_device(static_cast<uint8_t*>(dst), s, count, handle(stream), flags);
    case cudaMemcpyDeviceToDevice: {
      if (flags & kAsync) {  // stream-ordered and no host bytes: posted
        wire::vgpuMemcpyDtoDAsync_req req{};
        req.dst = d;
        req.src = s;
        req.count = count;
        req.stream = handle(stream);
        return guest_post(static_cast<uint16_t>(call_id::vgpuMemcpyDtoDAsync), &req,
                          wire::vgpuMemcpyDtoDAsync_req::wire_size(), nullptr, 0);
      }
      wire::vgpuMemcpyDtoD_req req{};
      req.dst = d;
      req.src = s;
      req.count = count;
      req.stream = handle(stream);
      req.flags = flags;
      return guest_call(static_cast<uint16_t>(call_id::vgpuMemcpyDtoD), &req,
                        wire::vgpuMemcpyDtoD_req::wire_size(), nullptr, 0, 0);
    }
    default:
      return cudaErrorInvalidMemcpyDirection;
  }
}

namespace {

cudaError_t memset(void* dst, int value, size_t count, cudaStream_t stream, uint32_t flags) {
  if (count == 0) return cudaSuccess;
  if (flags & kAsync) {
    wire::vgpuMemsetAsync_req req{};
    req.dst = reinterpret_cast<uint64_t>(dst);
    req.value = value;
    req.count = count;
    req.stream = handle(stream);
    return guest_post(static_cast<uint16_t>(call_id::vgpuMemsetAsync), &req, wire::vgpuMemsetAsync_req::wire_size(),
                      nullptr, 0);
  }
  wire::vgpuMemset_req req{};
  req.dst = reinterpret_cast<uint64_t>(dst);
  req.value = value;
  req.count = count;
  req.stream = handle(stream);
  req.flags = flags;
  return guest_call(static_cast<uint16_t>(call_id::vgpuMemset), &req, wire::vgpuMemset_req::wire_size(),
                    nullptr, 0, 0);
}

}  // namespace

}  // namespace vgpu::shim

using vgpu::shim::finish;

extern "C" cudaError_t cudaMemcpy(void* dst, const void* src, size_t count, cudaMemcpyKind kind) {
  return finish(vgpu::shim::copy(dst, src, count, kind, nullptr, 0));
}

extern "C" cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t count, cudaMemcpyKind kind,
                                       cudaStream_t stream) {
  return finish(vgpu::shim::copy(dst, src, count, kind, stream, vgpu::shim::kAsync));
}

extern "C" cudaError_t cudaMemset(void* devPtr, int value, size_t count) {
  return finish(vgpu::shim::memset(devPtr, value, count, nullptr, 0));
}

extern "C" cudaError_t cudaMemsetAsync(void* devPtr, int value, size_t count, cudaStream_t stream) {
  return finish(vgpu::shim::memset(devPtr, value, count, stream, vgpu::shim::kAsync));
}

// Per-thread default stream builds (--default-stream per-thread): the legacy
// default stream of the plain functions becomes the calling thread's stream.
extern "C" cudaError_t cudaMemcpy_ptds(void* dst, const void* src, size_t count, cudaMemcpyKind kind) {
  return finish(vgpu::shim::copy(dst, src, count, kind, cudaStreamPerThread, 0));
}

extern "C" cudaError_t cudaMemcpyAsync_ptsz(void* dst, const void* src, size_t count, cudaMemcpyKind kind,
                                            cudaStream_t stream) {
  return finish(vgpu::shim::copy(dst, src, count, kind, stream ? stream : cudaStreamPerThread, vgpu::shim::kAsync));
}

extern "C" cudaError_t cudaMemset_ptds(void* devPtr, int value, size_t count) {
  return finish(vgpu::shim::memset(devPtr, value, count, cudaStreamPerThread, 0));
}

extern "C" cudaError_t cudaMemsetAsync_ptsz(void* devPtr, int value, size_t count, cudaStream_t stream) {
  return finish(vgpu::shim::memset(devPtr, value, count, stream ? stream : cudaStreamPerThread, vgpu::shim::kAsync));
}
