#include "actors/executor/cuda/cuda_session.h"

#include <cuda_runtime_api.h>

#include <utility>

#include <spdlog/spdlog.h>

#include "actors/executor/cuda/cuda_errors.h"

namespace vgpu::host::cuda {

namespace {

constexpr uint32_t kAsyncFlag = 1u << 0;  // vgpuMemcpy*/vgpuMemset flags bit 0

constexpr uint32_t kEventFlagsAllowed =
    cudaEventDefault | cudaEventBlockingSync | cudaEventDisableTiming | cudaEventInterprocess;

// Makes a session's context current on the calling thread for one handler
// call and puts back whatever was current before. Worker threads serve many
// sessions, so no call may rely on what the previous one left current.
class context_scope {
 public:
  explicit context_scope(CUcontext c) {
    status_ = cuCtxGetCurrent(&previous_);
    if (status_ == CUDA_SUCCESS && previous_ != c) {
      status_ = cuCtxSetCurrent(c);
      switched_ = status_ == CUDA_SUCCESS;
    }
  }
  ~context_scope() {
    if (switched_) cuCtxSetCurrent(previous_);
  }
  context_scope(const context_scope&) = delete;
  context_scope& operator=(const context_scope&) = delete;

  CUresult status() const { return status_; }

 private:
  CUcontext previous_ = nullptr;
  CUresult status_ = CUDA_SUCCESS;
  bool switched_ = false;
};

}  // namespace

// Every handler starts with this: the session's context, current for the call.
#define VGPU_IN_SESSION_CONTEXT(c)                                                 \
  const context_scope scope_(ctx_.get());                                          \
  if (scope_.status() != CUDA_SUCCESS) return check(scope_.status(), "cuCtxSetCurrent", c)

void cuda_session::context_destroy::operator()(CUctx_st* c) const {
  if (const CUresult r = cuCtxDestroy(c); r != CUDA_SUCCESS) {
    spdlog::warn("[cuda-executor] cuCtxDestroy failed: {}", error_name(r));
  }
}

void cuda_session::stream_destroy::operator()(CUstream_st* s) const {
  if (const CUresult r = cuStreamDestroy(s); r != CUDA_SUCCESS) {
    spdlog::debug("[cuda-executor] cuStreamDestroy failed: {}", error_name(r));
  }
}

void cuda_session::event_destroy::operator()(CUevent_st* e) const {
  if (const CUresult r = cuEventDestroy(e); r != CUDA_SUCCESS) {
    spdlog::debug("[cuda-executor] cuEventDestroy failed: {}", error_name(r));
  }
}

std::unique_ptr<cuda_session> cuda_session::open(std::shared_ptr<shared_state> state,
                                                 const session_info& info, int device,
                                                 std::string* why) {
  const auto fail = [&](const char* what, CUresult r) {
    if (why != nullptr) *why = std::string(what) + " failed: " + error_text(r);
    return nullptr;
  };
  if (!state->device_ok(device)) {
    if (why != nullptr) *why = "no GPU " + std::to_string(device);
    return nullptr;
  }
  CUdevice dev = 0;
  if (const CUresult r = cuDeviceGet(&dev, device); r != CUDA_SUCCESS) return fail("cuDeviceGet", r);
  // A context of its own per session: separate GPU address spaces, so one
  // guest can never name another's memory even by a forged address.
  CUcontext raw = nullptr;
  if (const CUresult r = cuCtxCreate(&raw, nullptr, 0, dev); r != CUDA_SUCCESS) {
    return fail("cuCtxCreate", r);
  }
  owned_context ctx(raw);
  // cuCtxCreate left it current on this (the opening) thread; handlers make
  // it current themselves on whichever worker thread serves the call.
  CUcontext popped = nullptr;
  if (const CUresult r = cuCtxPopCurrent(&popped); r != CUDA_SUCCESS) {
    return fail("cuCtxPopCurrent", r);
  }
  return std::unique_ptr<cuda_session>(
      new cuda_session(std::move(state), info, device, std::move(ctx)));
}

cuda_session::cuda_session(std::shared_ptr<shared_state> state, session_info info, int device,
                           owned_context ctx)
    : state_(std::move(state)), info_(std::move(info)), device_(device), ctx_(std::move(ctx)) {
  spdlog::info("[cuda-executor] session {} opened for vm={} on GPU {} ({})", info_.session_id,
               info_.vm_id, device_, state_->gpus[static_cast<size_t>(device_)].name);
}

cuda_session::~cuda_session() {
  const uint64_t bytes = ledger_.bytes();
  {
    // Streams and events are destroyed and memory freed explicitly, in the
    // context, before cuCtxDestroy (ctx_'s deleter) releases the context.
    const context_scope scope(ctx_.get());
    if (scope.status() != CUDA_SUCCESS) {
      spdlog::warn("[cuda-executor] session {}: cannot make its context current ({}); "
                   "cuCtxDestroy will release what it holds",
                   info_.session_id, error_name(scope.status()));
    }
    events_.all().clear();
    streams_.all().clear();
    for (const auto& [base, size] : ledger_.all()) {
      if (const CUresult r = cuMemFree(static_cast<CUdeviceptr>(base)); r != CUDA_SUCCESS) {
        spdlog::debug("[cuda-executor] cuMemFree(0x{:x}, {} bytes) at close failed: {}", base,
                      size, error_name(r));
      }
    }
  }
  state_->used.fetch_sub(bytes, std::memory_order_relaxed);
  spdlog::info("[cuda-executor] session {} closed: freed {} bytes (vm={})", info_.session_id,
               bytes, info_.vm_id);
}

cudaError_t cuda_session::check(CUresult r, const char* what, const call_context& c) const {
  if (r == CUDA_SUCCESS) return cudaSuccess;
  spdlog::debug("[cuda-executor] {} failed: {} (vm={})", what, error_name(r), c.vm_id);
  return to_cuda_error(r);
}

bool cuda_session::resolve_stream(uint64_t id, CUstream* out) {
  switch (id) {
    case kStreamLegacyDefault: *out = nullptr; return true;  // the context's NULL stream
    case kStreamLegacy: *out = CU_STREAM_LEGACY; return true;
    case kStreamPerThread: *out = CU_STREAM_PER_THREAD; return true;
    default: break;
  }
  const owned_stream* s = streams_.find(id);
  if (s == nullptr) return false;
  *out = s->get();
  return true;
}

CUevent cuda_session::find_event(uint64_t id) {
  const owned_event* e = events_.find(id);
  return e != nullptr ? e->get() : nullptr;
}

cudaError_t cuda_session::bad_handle(const char* call, const char* kind, uint64_t id,
                                     const call_context& c) const {
  spdlog::debug("[cuda-executor] {}: no {} {:#x} in this session (vm={})", call, kind, id,
                c.vm_id);
  return cudaErrorInvalidResourceHandle;
}

cudaError_t cuda_session::check_range(const char* call, const call_context& c, uint64_t ptr,
                                      uint64_t len) const {
  // Never let a guest pointer reach the driver unchecked.
  if (ledger_.contains(ptr, len)) return cudaSuccess;
  spdlog::debug("[cuda-executor] {}: [0x{:x}, +{}) is not inside an allocation of this session "
                "(vm={})",
                call, ptr, len, c.vm_id);
  return cudaErrorInvalidValue;
}

// --- device and version -----------------------------------------------------

cudaError_t cuda_session::on_cudaGetDeviceCount(call_context& c, int32_t* count) {
  VGPU_IN_SESSION_CONTEXT(c);
  int n = 0;
  const cudaError_t st = check(cuDeviceGetCount(&n), "cuDeviceGetCount", c);
  *count = n;
  return st;
}

cudaError_t cuda_session::on_cudaDriverGetVersion(call_context& c, int32_t* driverVersion) {
  VGPU_IN_SESSION_CONTEXT(c);
  int v = 0;
  const cudaError_t st = check(cuDriverGetVersion(&v), "cuDriverGetVersion", c);
  *driverVersion = v;
  return st;
}

cudaError_t cuda_session::on_cudaGetDeviceProperties(call_context& c, cudaDeviceProp* prop,
                                                     int32_t device) {
  VGPU_IN_SESSION_CONTEXT(c);
  if (!state_->device_ok(device)) return cudaErrorInvalidDevice;
  // NVIDIA's own runtime fills the struct: ~100 fields from as many driver
  // attributes, which it keeps in step with the header it was built with.
  const cudaError_t st = ::cudaGetDeviceProperties(prop, device);
  if (st != cudaSuccess) {
    spdlog::debug("[cuda-executor] cudaGetDeviceProperties({}) failed: {} (vm={})", device,
                  static_cast<int>(st), c.vm_id);
  }
  return st;
}

cudaError_t cuda_session::on_cudaDeviceGetAttribute(call_context& c, int32_t* value, int32_t attr,
                                                    int32_t device) {
  VGPU_IN_SESSION_CONTEXT(c);
  if (!state_->device_ok(device)) return cudaErrorInvalidDevice;
  // The same range check as the reference executor, so both answer alike.
  if (attr < 1 || attr >= static_cast<int32_t>(cudaDevAttrMax)) return cudaErrorInvalidValue;
  CUdevice dev = 0;
  if (cudaError_t st = check(cuDeviceGet(&dev, device), "cuDeviceGet", c); st != cudaSuccess) {
    return st;
  }
  // cudaDeviceAttr and CUdevice_attribute share their numbering.
  int v = 0;
  const cudaError_t st = check(
      cuDeviceGetAttribute(&v, static_cast<CUdevice_attribute>(attr), dev), "cuDeviceGetAttribute",
      c);
  *value = v;
  return st;
}

cudaError_t cuda_session::on_cudaDeviceSynchronize(call_context& c) {
  VGPU_IN_SESSION_CONTEXT(c);
  // issue 3: the worker must not block on the GPU; replace by a reply sent
  // when the context's work completes.
  return check(cuCtxSynchronize(), "cuCtxSynchronize", c);
}

// --- memory -------------------------------------------------------------------

cudaError_t cuda_session::on_cudaMalloc(call_context& c, uint64_t* devPtr, uint64_t size) {
  VGPU_IN_SESSION_CONTEXT(c);
  *devPtr = 0;
  if (size == 0) return cudaSuccess;  // as CUDA: success, null pointer
  spdlog::debug("[cuda-executor] cuMemAlloc: allocating {} bytes on physical GPU (vm={})", size,
                c.vm_id);
  CUdeviceptr p = 0;
  if (cudaError_t st = check(cuMemAlloc(&p, size), "cuMemAlloc", c); st != cudaSuccess) return st;
  ledger_.add(p, size);
  state_->used.fetch_add(size, std::memory_order_relaxed);
  *devPtr = p;
  spdlog::debug("[cuda-executor] cuMemAlloc SUCCESS: allocated 0x{:x} on physical GPU", p);
  return cudaSuccess;
}

cudaError_t cuda_session::on_cudaFree(call_context& c, uint64_t devPtr) {
  VGPU_IN_SESSION_CONTEXT(c);
  if (devPtr == 0) return cudaSuccess;  // as CUDA: freeing null is a no-op
  const auto it = ledger_.all().find(devPtr);
  if (it == ledger_.all().end()) {
    spdlog::debug("[cuda-executor] cudaFree: 0x{:x} is not an allocation of this session "
                  "(vm={})",
                  devPtr, c.vm_id);
    return cudaErrorInvalidValue;  // the driver never sees a pointer we did not hand out
  }
  const uint64_t size = it->second;
  spdlog::debug("[cuda-executor] cuMemFree: freeing {} bytes at 0x{:x} on physical GPU (vm={})",
                size, devPtr, c.vm_id);
  if (cudaError_t st = check(cuMemFree(static_cast<CUdeviceptr>(devPtr)), "cuMemFree", c);
      st != cudaSuccess) {
    return st;  // still in the ledger: freed with the session at the latest
  }
  ledger_.remove(devPtr);
  state_->used.fetch_sub(size, std::memory_order_relaxed);
  return cudaSuccess;
}

cudaError_t cuda_session::on_cudaMemGetInfo(call_context& c, uint64_t* free, uint64_t* total) {
  VGPU_IN_SESSION_CONTEXT(c);
  size_t f = 0;
  size_t t = 0;
  const cudaError_t st = check(cuMemGetInfo(&f, &t), "cuMemGetInfo", c);
  *free = f;
  *total = t;
  return st;
}

// --- copies and memsets -------------------------------------------------------
// The host side of H2D/D2H is a span of the channel's data area: pageable
// memory to the driver. The stream is checked even for empty operations;
// pointers only when bytes move, as in the reference executor.

cudaError_t cuda_session::on_vgpuMemcpyHtoD(call_context& c, uint64_t dst, const_bytes src,
                                            uint64_t stream, uint32_t flags) {
  VGPU_IN_SESSION_CONTEXT(c);
  CUstream s = nullptr;
  if (!resolve_stream(stream, &s)) return bad_handle("vgpuMemcpyHtoD", "stream", stream, c);
  if (src.size == 0) return cudaSuccess;
  if (cudaError_t st = check_range("vgpuMemcpyHtoD", c, dst, src.size); st != cudaSuccess) {
    return st;
  }
  if (flags & kAsyncFlag) {
    // From pageable memory the driver has staged the source before it
    // returns, so the data area may be reused once we reply.
    return check(cuMemcpyHtoDAsync(dst, src.data, src.size, s), "cuMemcpyHtoDAsync", c);
  }
  return check(cuMemcpyHtoD(dst, src.data, src.size), "cuMemcpyHtoD", c);
}

cudaError_t cuda_session::on_vgpuMemcpyDtoH(call_context& c, mut_bytes dst, uint64_t src,
                                            uint64_t stream, uint32_t flags) {
  VGPU_IN_SESSION_CONTEXT(c);
  CUstream s = nullptr;
  if (!resolve_stream(stream, &s)) return bad_handle("vgpuMemcpyDtoH", "stream", stream, c);
  if (dst.size == 0) return cudaSuccess;
  if (cudaError_t st = check_range("vgpuMemcpyDtoH", c, src, dst.size); st != cudaSuccess) {
    return st;
  }
  if (flags & kAsyncFlag) {
    if (cudaError_t st =
            check(cuMemcpyDtoHAsync(dst.data, src, dst.size, s), "cuMemcpyDtoHAsync", c);
        st != cudaSuccess) {
      return st;
    }
    // The bytes must be in the data area when the reply goes back.
    // issue 3: the worker must not block on the GPU; replace by a reply sent
    // when the copy completes (completion-driven replies).
    return check(cuStreamSynchronize(s), "cuStreamSynchronize", c);
  }
  return check(cuMemcpyDtoH(dst.data, src, dst.size), "cuMemcpyDtoH", c);
}

cudaError_t cuda_session::on_vgpuMemcpyDtoD(call_context& c, uint64_t dst, uint64_t src,
                                            uint64_t count, uint64_t stream, uint32_t flags) {
  VGPU_IN_SESSION_CONTEXT(c);
  CUstream s = nullptr;
  if (!resolve_stream(stream, &s)) return bad_handle("vgpuMemcpyDtoD", "stream", stream, c);
  if (count == 0) return cudaSuccess;
  if (cudaError_t st = check_range("vgpuMemcpyDtoD", c, src, count); st != cudaSuccess) return st;
  if (cudaError_t st = check_range("vgpuMemcpyDtoD", c, dst, count); st != cudaSuccess) return st;
  if (flags & kAsyncFlag) {
    return check(cuMemcpyDtoDAsync(dst, src, count, s), "cuMemcpyDtoDAsync", c);
  }
  return check(cuMemcpyDtoD(dst, src, count), "cuMemcpyDtoD", c);
}

cudaError_t cuda_session::on_vgpuMemset(call_context& c, uint64_t dst, int32_t value,
                                        uint64_t count, uint64_t stream, uint32_t flags) {
  VGPU_IN_SESSION_CONTEXT(c);
  CUstream s = nullptr;
  if (!resolve_stream(stream, &s)) return bad_handle("vgpuMemset", "stream", stream, c);
  if (count == 0) return cudaSuccess;
  if (cudaError_t st = check_range("vgpuMemset", c, dst, count); st != cudaSuccess) return st;
  const auto byte = static_cast<unsigned char>(value);
  if (flags & kAsyncFlag) {
    return check(cuMemsetD8Async(dst, byte, count, s), "cuMemsetD8Async", c);
  }
  return check(cuMemsetD8(dst, byte, count), "cuMemsetD8", c);
}

// --- streams ------------------------------------------------------------------

cudaError_t cuda_session::create_stream(call_context& c, uint64_t* pStream, uint32_t flags,
                                        int32_t priority, bool with_priority) {
  VGPU_IN_SESSION_CONTEXT(c);
  if (flags != cudaStreamDefault && flags != cudaStreamNonBlocking) return cudaErrorInvalidValue;
  // CU_STREAM_DEFAULT / CU_STREAM_NON_BLOCKING have the runtime's values.
  CUstream raw = nullptr;
  const CUresult r = with_priority ? cuStreamCreateWithPriority(&raw, flags, priority)
                                   : cuStreamCreate(&raw, flags);
  if (cudaError_t st = check(r, "cuStreamCreate", c); st != cudaSuccess) return st;
  *pStream = streams_.add(owned_stream(raw));
  return cudaSuccess;
}

cudaError_t cuda_session::on_cudaStreamCreate(call_context& c, uint64_t* pStream) {
  return create_stream(c, pStream, cudaStreamDefault, 0, false);
}

cudaError_t cuda_session::on_cudaStreamCreateWithFlags(call_context& c, uint64_t* pStream,
                                                       uint32_t flags) {
  return create_stream(c, pStream, flags, 0, false);
}

cudaError_t cuda_session::on_cudaStreamCreateWithPriority(call_context& c, uint64_t* pStream,
                                                          uint32_t flags, int32_t priority) {
  return create_stream(c, pStream, flags, priority, true);
}

cudaError_t cuda_session::on_cudaStreamDestroy(call_context& c, uint64_t stream) {
  VGPU_IN_SESSION_CONTEXT(c);
  owned_stream* s = streams_.find(stream);  // builtins are never in the table
  if (s == nullptr) return bad_handle("cudaStreamDestroy", "stream", stream, c);
  CUstream raw = s->release();
  streams_.erase(stream);
  return check(cuStreamDestroy(raw), "cuStreamDestroy", c);
}

cudaError_t cuda_session::on_cudaStreamSynchronize(call_context& c, uint64_t stream) {
  VGPU_IN_SESSION_CONTEXT(c);
  CUstream s = nullptr;
  if (!resolve_stream(stream, &s)) return bad_handle("cudaStreamSynchronize", "stream", stream, c);
  // issue 3: the worker must not block on the GPU; replace by a reply sent
  // when the stream reaches this point.
  return check(cuStreamSynchronize(s), "cuStreamSynchronize", c);
}

cudaError_t cuda_session::on_cudaStreamQuery(call_context& c, uint64_t stream) {
  VGPU_IN_SESSION_CONTEXT(c);
  CUstream s = nullptr;
  if (!resolve_stream(stream, &s)) return bad_handle("cudaStreamQuery", "stream", stream, c);
  return check(cuStreamQuery(s), "cuStreamQuery", c);
}

// --- events -------------------------------------------------------------------

cudaError_t cuda_session::on_cudaEventCreate(call_context& c, uint64_t* event) {
  return on_cudaEventCreateWithFlags(c, event, cudaEventDefault);
}

cudaError_t cuda_session::on_cudaEventCreateWithFlags(call_context& c, uint64_t* event,
                                                      uint32_t flags) {
  VGPU_IN_SESSION_CONTEXT(c);
  // The reference executor's checks (Interprocess requires DisableTiming);
  // CU_EVENT_* have the runtime's values.
  if ((flags & ~kEventFlagsAllowed) != 0 ||
      ((flags & cudaEventInterprocess) && !(flags & cudaEventDisableTiming))) {
    return cudaErrorInvalidValue;
  }
  CUevent raw = nullptr;
  if (cudaError_t st = check(cuEventCreate(&raw, flags), "cuEventCreate", c); st != cudaSuccess) {
    return st;
  }
  *event = events_.add(owned_event(raw));
  return cudaSuccess;
}

cudaError_t cuda_session::on_cudaEventRecord(call_context& c, uint64_t event, uint64_t stream) {
  VGPU_IN_SESSION_CONTEXT(c);
  const CUevent e = find_event(event);
  if (e == nullptr) return bad_handle("cudaEventRecord", "event", event, c);
  CUstream s = nullptr;
  if (!resolve_stream(stream, &s)) return bad_handle("cudaEventRecord", "stream", stream, c);
  return check(cuEventRecord(e, s), "cuEventRecord", c);
}

cudaError_t cuda_session::on_cudaEventSynchronize(call_context& c, uint64_t event) {
  VGPU_IN_SESSION_CONTEXT(c);
  const CUevent e = find_event(event);
  if (e == nullptr) return bad_handle("cudaEventSynchronize", "event", event, c);
  // issue 3: the worker must not block on the GPU; replace by a reply sent
  // when the event completes.
  return check(cuEventSynchronize(e), "cuEventSynchronize", c);
}

cudaError_t cuda_session::on_cudaEventQuery(call_context& c, uint64_t event) {
  VGPU_IN_SESSION_CONTEXT(c);
  const CUevent e = find_event(event);
  if (e == nullptr) return bad_handle("cudaEventQuery", "event", event, c);
  return check(cuEventQuery(e), "cuEventQuery", c);
}

cudaError_t cuda_session::on_cudaEventElapsedTime(call_context& c, float* ms, uint64_t start,
                                                  uint64_t end) {
  VGPU_IN_SESSION_CONTEXT(c);
  const CUevent a = find_event(start);
  if (a == nullptr) return bad_handle("cudaEventElapsedTime", "event", start, c);
  const CUevent b = find_event(end);
  if (b == nullptr) return bad_handle("cudaEventElapsedTime", "event", end, c);
  float v = 0.0f;
  // cuEventElapsedTime is cuEventElapsedTime_v2 in CUDA 13's header.
  const cudaError_t st = check(cuEventElapsedTime(&v, a, b), "cuEventElapsedTime", c);
  *ms = v;
  return st;
}

cudaError_t cuda_session::on_cudaEventDestroy(call_context& c, uint64_t event) {
  VGPU_IN_SESSION_CONTEXT(c);
  owned_event* e = events_.find(event);
  if (e == nullptr) return bad_handle("cudaEventDestroy", "event", event, c);
  CUevent raw = e->release();
  events_.erase(event);
  return check(cuEventDestroy(raw), "cuEventDestroy", c);
}

}  // namespace vgpu::host::cuda

#undef VGPU_IN_SESSION_CONTEXT
