#include "actors/executor/reference/reference_session.h"

#include <algorithm>
#include <cstring>
#include <utility>

#include <spdlog/spdlog.h>

#include "actors/executor/reference/reference_device.h"

namespace vgpu::host::reference {

namespace {

// What cudaDriverGetVersion reports: the CUDA 13.0 the shim is built against.
constexpr int32_t kDriverVersion = 13000;

constexpr uint32_t kAsyncFlag = 1u << 0;  // vgpuMemcpy*/vgpuMemset flags bit 0

constexpr uint32_t kEventFlagsAllowed =
    cudaEventDefault | cudaEventBlockingSync | cudaEventDisableTiming | cudaEventInterprocess;

const char* mode(uint32_t flags) { return (flags & kAsyncFlag) ? "async" : "sync"; }

}  // namespace

reference_session::reference_session(std::shared_ptr<shared_state> state, session_info info)
    : state_(std::move(state)), info_(std::move(info)), budget_(info_.budget) {
  spdlog::info("[reference-executor] session {} opened for vm={}", info_.session_id, info_.vm_id);
}

reference_session::~reference_session() {
  // The blocks in memory_ (module variables among them) free themselves; the
  // executor-wide count must drop by what this session still held (a crashed
  // guest frees nothing itself). Modules, functions and launch records are
  // plain members.
  const uint64_t bytes = ledger_.bytes();
  state_->release(bytes);
  spdlog::info("[reference-executor] session {} closed: freed {} bytes in {} allocation(s), {} "
               "stream(s), {} event(s), {} module(s), {} launch record(s) (vm={})",
               info_.session_id, bytes, ledger_.count(), streams_.size(), events_.size(),
               modules_.size(), launches_.size(), info_.vm_id);
}

bool reference_session::device_ok(int32_t device) const {
  return device >= 0 && device < state_->opts().device_count;
}

bool reference_session::stream_ok(uint64_t id) {
  return is_builtin_stream(id) || streams_.find(id) != nullptr;
}

uint8_t* reference_session::host_at(uint64_t ptr) {
  if (uint8_t* m = mapped_host_at(ptr)) return m;  // driver API VMM (reference_session_driver.cpp)
  auto it = memory_.upper_bound(ptr);
  --it;  // the ledger vouched for ptr, so an allocation starts at or below it
  return it->second.get() + (ptr - it->first);
}

cudaError_t reference_session::check_range(const char* call, const call_context& ctx,
                                           uint64_t ptr, uint64_t len) const {
  if (ledger_.contains(ptr, len) || mapped_covers(ptr, len)) return cudaSuccess;
  spdlog::debug("[reference-executor] {}: [0x{:x}, +{}) is not inside an allocation of this "
                "session (vm={})",
                call, ptr, len, ctx.vm_id);
  return cudaErrorInvalidValue;
}

// --- device and version -----------------------------------------------------

cudaError_t reference_session::on_cudaGetDeviceCount(call_context&, int32_t* count) {
  *count = state_->opts().device_count;
  return cudaSuccess;
}

cudaError_t reference_session::on_cudaDriverGetVersion(call_context&, int32_t* driverVersion) {
  *driverVersion = kDriverVersion;
  return cudaSuccess;
}

// The range an H100 reports; the reference executor runs every stream alike.
cudaError_t reference_session::on_cudaDeviceGetStreamPriorityRange(call_context&, int32_t* least,
                                                                  int32_t* greatest) {
  *least = 0;
  *greatest = -5;
  return cudaSuccess;
}

cudaError_t reference_session::on_cudaDeviceSetLimit(call_context&, int32_t limit, uint64_t value) {
  if (limit < 0 || limit > cudaLimitPersistingL2CacheSize) return cudaErrorInvalidValue;  // as NVIDIA's runtime
  limits_[limit] = value;
  return cudaSuccess;
}

cudaError_t reference_session::on_cudaDeviceGetLimit(call_context&, uint64_t* pValue, int32_t limit) {
  if (limit < 0 || limit > cudaLimitPersistingL2CacheSize) return cudaErrorInvalidValue;  // as NVIDIA's runtime
  *pValue = limits_[limit];
  return cudaSuccess;
}

cudaError_t reference_session::on_cudaCtxResetPersistingL2Cache(call_context&) {
  return cudaSuccess;  // no cache to reset on the CPU
}

cudaError_t reference_session::on_cudaGetDeviceProperties(call_context& ctx, cudaDeviceProp* prop,
                                                          int32_t device) {
  if (!device_ok(device)) {
    spdlog::debug("[reference-executor] cudaGetDeviceProperties: no device {} (vm={})", device,
                  ctx.vm_id);
    return cudaErrorInvalidDevice;
  }
  *prop = state_->props();
  return cudaSuccess;
}

cudaError_t reference_session::on_cudaDeviceGetAttribute(call_context& ctx, int32_t* value,
                                                         int32_t attr, int32_t device) {
  if (!device_ok(device)) {
    spdlog::debug("[reference-executor] cudaDeviceGetAttribute: no device {} (vm={})", device,
                  ctx.vm_id);
    return cudaErrorInvalidDevice;
  }
  const cudaError_t st = device_attribute(state_->props(), attr, value);
  if (st != cudaSuccess) {
    spdlog::debug("[reference-executor] cudaDeviceGetAttribute: no attribute {} (vm={})", attr,
                  ctx.vm_id);
  }
  return st;
}

cudaError_t reference_session::on_cudaDeviceSynchronize(call_context&) {
  return cudaSuccess;  // everything already ran when it was called
}

// --- memory -------------------------------------------------------------------

cudaError_t reference_session::allocate(const char* call, uint64_t size, uint64_t* base) {
  if (!state_->reserve(size)) {
    spdlog::debug("[reference-executor] {}: {} bytes exceed the {} bytes left of {} (vm={})", call,
                  size, state_->opts().memory_bytes - state_->used(), state_->opts().memory_bytes,
                  info_.vm_id);
    return cudaErrorMemoryAllocation;
  }
  const uint64_t b = state_->take_address(size);
  host_block block(b != 0 ? static_cast<uint8_t*>(std::calloc(size, 1)) : nullptr);
  if (!block) {
    state_->release(size);
    spdlog::debug("[reference-executor] {}: host RAM refused {} bytes (vm={})", call, size,
                  info_.vm_id);
    return cudaErrorMemoryAllocation;
  }
  memory_.emplace(b, std::move(block));
  ledger_.add(b, size);
  *base = b;
  return cudaSuccess;
}

void reference_session::release_block(uint64_t base) {
  uint64_t size = 0;
  if (!ledger_.remove(base, &size)) return;
  memory_.erase(base);
  state_->release(size);
}

cudaError_t reference_session::on_cudaMalloc(call_context& ctx, uint64_t* devPtr, uint64_t size) {
  *devPtr = 0;
  if (size == 0) return cudaSuccess;  // as CUDA: success, null pointer
  spdlog::debug("[reference-executor] cudaMalloc: allocating {} bytes in host RAM (vm={})", size,
                ctx.vm_id);
  memory_charge charge(budget_, size, "cudaMalloc");
  if (!charge.ok()) return cudaErrorMemoryAllocation;  // over the VM's memory limit
  uint64_t base = 0;
  if (cudaError_t st = allocate("cudaMalloc", size, &base); st != cudaSuccess) return st;
  charge.keep();  // cudaFree (or the session's end) gives it back
  *devPtr = base;
  spdlog::debug("[reference-executor] cudaMalloc: allocated 0x{:x} in host RAM", base);
  return cudaSuccess;
}

cudaError_t reference_session::on_cudaFree(call_context& ctx, uint64_t devPtr) {
  if (devPtr == 0) return cudaSuccess;  // as CUDA: freeing null is a no-op
  // A module variable lives as long as its module, as on a GPU.
  if (module_globals_.count(devPtr) != 0) {
    spdlog::debug("[reference-executor] cudaFree: 0x{:x} is a module variable, not cudaMalloc "
                  "memory (vm={})",
                  devPtr, ctx.vm_id);
    return cudaErrorInvalidValue;
  }
  uint64_t size = 0;
  if (!ledger_.remove(devPtr, &size)) {
    spdlog::debug("[reference-executor] cudaFree: 0x{:x} is not an allocation of this session "
                  "(vm={})",
                  devPtr, ctx.vm_id);
    return cudaErrorInvalidValue;
  }
  spdlog::debug("[reference-executor] cudaFree: freeing {} bytes (vm={})", size, ctx.vm_id);
  memory_.erase(devPtr);
  state_->release(size);
  budget_.refund(size);
  return cudaSuccess;
}

// The VM's view (memory_budget::view) of the memory this executor poses as.
// NVML's memory info and cuMemGetInfo are answered by this call too.
cudaError_t reference_session::on_cudaMemGetInfo(call_context&, uint64_t* free, uint64_t* total) {
  const uint64_t real_total = state_->opts().memory_bytes;
  budget_.view(real_total - state_->used(), real_total, free, total);
  return cudaSuccess;
}

// --- copies and memsets -------------------------------------------------------
// The stream is checked even for empty operations (an invalid handle is an
// error in CUDA whatever the size); pointers only when bytes move.

cudaError_t reference_session::on_vgpuMemcpyHtoD(call_context& ctx, uint64_t dst, const_bytes src,
                                                 uint64_t stream, uint32_t flags) {
  spdlog::debug("[reference-executor] vgpuMemcpyHtoD: {} bytes to 0x{:x} ({}, stream={:#x}, "
                "vm={})",
                src.size, dst, mode(flags), stream, ctx.vm_id);
  if (!stream_ok(stream)) return cudaErrorInvalidResourceHandle;
  if (cudaError_t st = capture_refuses(stream, "vgpuMemcpyHtoD"); st != cudaSuccess) return st;
  if (src.size == 0) return cudaSuccess;
  if (cudaError_t st = check_range("vgpuMemcpyHtoD", ctx, dst, src.size); st != cudaSuccess) {
    return st;
  }
  std::memcpy(host_at(dst), src.data, src.size);
  return cudaSuccess;
}

cudaError_t reference_session::on_vgpuMemcpyDtoH(call_context& ctx, mut_bytes dst, uint64_t src,
                                                 uint64_t stream, uint32_t flags) {
  spdlog::debug("[reference-executor] vgpuMemcpyDtoH: {} bytes from 0x{:x} ({}, stream={:#x}, "
                "vm={})",
                dst.size, src, mode(flags), stream, ctx.vm_id);
  if (!stream_ok(stream)) return cudaErrorInvalidResourceHandle;
  if (cudaError_t st = capture_refuses(stream, "vgpuMemcpyDtoH"); st != cudaSuccess) return st;
  if (dst.size == 0) return cudaSuccess;
  if (cudaError_t st = check_range("vgpuMemcpyDtoH", ctx, src, dst.size); st != cudaSuccess) {
    return st;
  }
  std::memcpy(dst.data, host_at(src), dst.size);
  return cudaSuccess;
}

cudaError_t reference_session::on_vgpuMemcpyDtoD(call_context& ctx, uint64_t dst, uint64_t src,
                                                 uint64_t count, uint64_t stream,
                                                 uint32_t flags) {
  spdlog::debug("[reference-executor] vgpuMemcpyDtoD: {} bytes 0x{:x} -> 0x{:x} ({}, "
                "stream={:#x}, vm={})",
                count, src, dst, mode(flags), stream, ctx.vm_id);
  if (!stream_ok(stream)) return cudaErrorInvalidResourceHandle;
  if (count == 0) return cudaSuccess;
  if (cudaError_t st = check_range("vgpuMemcpyDtoD", ctx, src, count); st != cudaSuccess) {
    return st;
  }
  if (cudaError_t st = check_range("vgpuMemcpyDtoD", ctx, dst, count); st != cudaSuccess) {
    return st;
  }
  if (capture_copy(stream, dst, src, count)) return cudaSuccess;  // a node of the capture
  std::memmove(host_at(dst), host_at(src), count);  // the ranges may overlap
  return cudaSuccess;
}

cudaError_t reference_session::on_vgpuMemsetElem(call_context& ctx, uint64_t dst, uint32_t value,
                                                 uint32_t elemSize, uint64_t count, uint64_t stream) {
  if (!stream_ok(stream)) return cudaErrorInvalidResourceHandle;
  if ((elemSize != 2 && elemSize != 4) || dst % elemSize != 0) return cudaErrorInvalidValue;
  if (count == 0) return cudaSuccess;
  if (count > UINT64_MAX / elemSize) return cudaErrorInvalidValue;
  if (cudaError_t st = check_range("vgpuMemsetElem", ctx, dst, count * elemSize); st != cudaSuccess) return st;
  uint8_t* p = host_at(dst);
  for (uint64_t i = 0; i < count; ++i) std::memcpy(p + i * elemSize, &value, elemSize);  // little-endian, as the GPU
  return cudaSuccess;
}

cudaError_t reference_session::on_vgpuMemset(call_context& ctx, uint64_t dst, int32_t value,
                                             uint64_t count, uint64_t stream, uint32_t flags) {
  spdlog::debug("[reference-executor] vgpuMemset: {} bytes at 0x{:x} to {:#04x} ({}, "
                "stream={:#x}, vm={})",
                count, dst, static_cast<unsigned char>(value), mode(flags), stream, ctx.vm_id);
  if (!stream_ok(stream)) return cudaErrorInvalidResourceHandle;
  if (count == 0) return cudaSuccess;
  if (cudaError_t st = check_range("vgpuMemset", ctx, dst, count); st != cudaSuccess) return st;
  if (capture_memset(stream, dst, value, count)) return cudaSuccess;  // a node of the capture
  std::memset(host_at(dst), static_cast<unsigned char>(value), count);
  return cudaSuccess;
}

// The posted forms: everything runs in call order here, so they are the
// synchronous ones; the worker keeps an error for the next syncpoint.
cudaError_t reference_session::on_vgpuMemsetAsync(call_context& ctx, uint64_t dst, int32_t value,
                                                  uint64_t count, uint64_t stream) {
  return on_vgpuMemset(ctx, dst, value, count, stream, kAsyncFlag);
}

cudaError_t reference_session::on_vgpuMemcpyDtoDAsync(call_context& ctx, uint64_t dst,
                                                      uint64_t src, uint64_t count,
                                                      uint64_t stream) {
  return on_vgpuMemcpyDtoD(ctx, dst, src, count, stream, kAsyncFlag);
}

// --- streams ------------------------------------------------------------------

cudaError_t reference_session::create_stream(call_context& ctx, uint64_t* pStream, uint32_t flags,
                                             int32_t priority) {
  if (flags != cudaStreamDefault && flags != cudaStreamNonBlocking) {
    spdlog::debug("[reference-executor] cudaStreamCreate: bad flags {:#x} (vm={})", flags,
                  ctx.vm_id);
    return cudaErrorInvalidValue;
  }
  *pStream = streams_.add(stream_state{flags, priority});
  spdlog::debug("[reference-executor] cudaStreamCreate: stream {:#x} (flags={:#x}, vm={})",
                *pStream, flags, ctx.vm_id);
  return cudaSuccess;
}

cudaError_t reference_session::on_cudaStreamCreate(call_context& ctx, uint64_t* pStream) {
  return create_stream(ctx, pStream, cudaStreamDefault, 0);
}

cudaError_t reference_session::on_cudaStreamCreateWithFlags(call_context& ctx, uint64_t* pStream,
                                                            uint32_t flags) {
  return create_stream(ctx, pStream, flags, 0);
}

cudaError_t reference_session::on_cudaStreamCreateWithPriority(call_context& ctx,
                                                               uint64_t* pStream, uint32_t flags,
                                                               int32_t priority) {
  return create_stream(ctx, pStream, flags, priority);
}

cudaError_t reference_session::on_cudaStreamDestroy(call_context& ctx, uint64_t stream) {
  // Builtin streams are not the guest's to destroy; erase() rejects them as
  // unknown since they never enter the table.
  if (!streams_.erase(stream)) {
    spdlog::debug("[reference-executor] cudaStreamDestroy: no stream {:#x} (vm={})", stream,
                  ctx.vm_id);
    return cudaErrorInvalidResourceHandle;
  }
  return cudaSuccess;
}

cudaError_t reference_session::on_cudaStreamSynchronize(call_context&, uint64_t stream) {
  if (cudaError_t st = capture_refuses(stream, "cudaStreamSynchronize"); st != cudaSuccess) return st;
  return stream_ok(stream) ? cudaSuccess : cudaErrorInvalidResourceHandle;
}

cudaError_t reference_session::on_cudaStreamQuery(call_context&, uint64_t stream) {
  return stream_ok(stream) ? cudaSuccess : cudaErrorInvalidResourceHandle;
}

cudaError_t reference_session::on_cudaStreamWaitEvent(call_context& ctx, uint64_t stream,
                                                      uint64_t event, uint32_t flags) {
  if (!stream_ok(stream) || events_.find(event) == nullptr) {
    spdlog::debug("[reference-executor] cudaStreamWaitEvent: bad stream {:#x} or event {:#x} "
                  "(vm={})",
                  stream, event, ctx.vm_id);
    return cudaErrorInvalidResourceHandle;
  }
  if (flags != cudaEventWaitDefault && flags != cudaEventWaitExternal) {
    spdlog::debug("[reference-executor] cudaStreamWaitEvent: bad flags {:#x} (vm={})", flags,
                  ctx.vm_id);
    return cudaErrorInvalidValue;
  }
  if (capture_event_wait(stream, event)) return cudaSuccess;  // a dependency of the capture
  return cudaSuccess;  // the event's work completed when it was recorded
}

// --- events -------------------------------------------------------------------

cudaError_t reference_session::on_cudaEventCreate(call_context& ctx, uint64_t* event) {
  return on_cudaEventCreateWithFlags(ctx, event, cudaEventDefault);
}

cudaError_t reference_session::on_cudaEventCreateWithFlags(call_context& ctx, uint64_t* event,
                                                           uint32_t flags) {
  // Interprocess events cannot carry timing in CUDA.
  const bool bad = (flags & ~kEventFlagsAllowed) != 0 ||
                   ((flags & cudaEventInterprocess) && !(flags & cudaEventDisableTiming));
  if (bad) {
    spdlog::debug("[reference-executor] cudaEventCreate: bad flags {:#x} (vm={})", flags,
                  ctx.vm_id);
    return cudaErrorInvalidValue;
  }
  *event = events_.add(event_state{flags, false, {}});
  return cudaSuccess;
}

cudaError_t reference_session::on_cudaEventRecord(call_context& ctx, uint64_t event,
                                                  uint64_t stream) {
  event_state* e = events_.find(event);
  if (e == nullptr || !stream_ok(stream)) {
    spdlog::debug("[reference-executor] cudaEventRecord: bad event {:#x} or stream {:#x} "
                  "(vm={})",
                  event, stream, ctx.vm_id);
    return cudaErrorInvalidResourceHandle;
  }
  if (capture_event_record(event, stream)) return cudaSuccess;  // marks a point of the capture
  // Everything before it on the stream has already run: "now" is when it completes.
  e->recorded = true;
  e->at = std::chrono::steady_clock::now();
  return cudaSuccess;
}

cudaError_t reference_session::on_cudaEventRecordWithFlags(call_context& ctx, uint64_t event,
                                                           uint64_t stream, uint32_t flags) {
  if (flags != cudaEventRecordDefault && flags != cudaEventRecordExternal) return cudaErrorInvalidValue;
  return on_cudaEventRecord(ctx, event, stream);
}

// Built-in streams: the legacy default stream's flags and priority are 0.
cudaError_t reference_session::on_cudaStreamGetPriority(call_context&, uint64_t stream,
                                                       int32_t* priority) {
  if (!stream_ok(stream)) return cudaErrorInvalidResourceHandle;
  const stream_state* st = streams_.find(stream);
  *priority = st ? st->priority : 0;
  return cudaSuccess;
}

cudaError_t reference_session::on_cudaStreamGetFlags(call_context&, uint64_t stream, uint32_t* flags) {
  if (!stream_ok(stream)) return cudaErrorInvalidResourceHandle;
  const stream_state* st = streams_.find(stream);
  *flags = st ? st->flags : 0;
  return cudaSuccess;
}

cudaError_t reference_session::on_cudaStreamGetId(call_context&, uint64_t stream, uint64_t* streamId) {
  if (!stream_ok(stream)) return cudaErrorInvalidResourceHandle;
  *streamId = stream;  // the session's handle is unique for the stream's life
  return cudaSuccess;
}

cudaError_t reference_session::on_cudaStreamGetDevice(call_context&, uint64_t stream, int32_t* device) {
  if (!stream_ok(stream)) return cudaErrorInvalidResourceHandle;
  *device = 0;  // a session's streams all live on its (one) device
  return cudaSuccess;
}

cudaError_t reference_session::on_vgpuMemcpy2DDtoDAsync(call_context& ctx, uint64_t dst, uint64_t dpitch,
                                                        uint64_t src, uint64_t spitch, uint64_t width,
                                                        uint64_t height, uint64_t stream) {
  if (!stream_ok(stream)) return cudaErrorInvalidResourceHandle;
  if (width == 0 || height == 0) return cudaSuccess;
  if (width > dpitch || width > spitch) return cudaErrorInvalidPitchValue;
  const uint64_t rows = height - 1;
  if (rows > (UINT64_MAX - width) / std::max(dpitch, spitch)) return cudaErrorInvalidValue;
  if (cudaError_t st = check_range("vgpuMemcpy2DDtoDAsync", ctx, src, rows * spitch + width); st != cudaSuccess)
    return st;
  if (cudaError_t st = check_range("vgpuMemcpy2DDtoDAsync", ctx, dst, rows * dpitch + width); st != cudaSuccess)
    return st;
  for (uint64_t r = 0; r < height; ++r) std::memmove(host_at(dst + r * dpitch), host_at(src + r * spitch), width);
  return cudaSuccess;
}

cudaError_t reference_session::on_cudaEventSynchronize(call_context&, uint64_t event) {
  return events_.find(event) ? cudaSuccess : cudaErrorInvalidResourceHandle;
}

cudaError_t reference_session::on_cudaEventQuery(call_context&, uint64_t event) {
  return events_.find(event) ? cudaSuccess : cudaErrorInvalidResourceHandle;
}

cudaError_t reference_session::on_cudaEventElapsedTime(call_context& ctx, float* ms,
                                                       uint64_t start, uint64_t end) {
  const event_state* a = events_.find(start);
  const event_state* b = events_.find(end);
  // CUDA answers the same error for unknown events, events without timing
  // and events never recorded.
  const auto timed = [](const event_state* e) {
    return e != nullptr && !(e->flags & cudaEventDisableTiming) && e->recorded;
  };
  if (!timed(a) || !timed(b)) {
    spdlog::debug("[reference-executor] cudaEventElapsedTime: events {:#x}, {:#x} are not both "
                  "recorded timing events (vm={})",
                  start, end, ctx.vm_id);
    return cudaErrorInvalidResourceHandle;
  }
  *ms = std::chrono::duration<float, std::milli>(b->at - a->at).count();
  return cudaSuccess;
}

cudaError_t reference_session::on_cudaEventDestroy(call_context& ctx, uint64_t event) {
  if (!events_.erase(event)) {
    spdlog::debug("[reference-executor] cudaEventDestroy: no event {:#x} (vm={})", event,
                  ctx.vm_id);
    return cudaErrorInvalidResourceHandle;
  }
  return cudaSuccess;
}

}  // namespace vgpu::host::reference
