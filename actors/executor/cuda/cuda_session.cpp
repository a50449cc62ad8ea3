#include "actors/executor/cuda/cuda_session.h"

#include <cuda_runtime_api.h>

#include <algorithm>
#include <cstring>
#include <optional>
#include <utility>

#include <spdlog/spdlog.h>

#include "actors/executor/cuda/cuda_errors.h"

namespace vgpu::host::cuda {

namespace {

constexpr uint32_t kAsyncFlag = 1u << 0;  // vgpuMemcpy*/vgpuMemset flags bit 0

constexpr uint32_t kEventFlagsAllowed =
    cudaEventDefault | cudaEventBlockingSync | cudaEventDisableTiming | cudaEventInterprocess;

constexpr uint32_t kLaunchCooperative = 1u << 0;    // vgpuLaunchKernel launchFlags
constexpr uint32_t kLaunchProgrammatic = 1u << 1;

// Makes a session's context current on the calling thread. Worker threads
// serve many sessions, so every handler (and every deferred reply) makes its
// own context current before it calls the driver and relies on nothing the
// previous call left. It does not put the previous context back: nothing on a
// worker thread expects one, and skipping the restore (and the switch, when
// the thread already has this context, the common case of one busy session
// per worker) keeps a posted launch at one cheap cuCtxGetCurrent.
inline CUresult make_current(CUcontext c) {
  CUcontext current = nullptr;
  // A failure (a destroyed context left current) just means: switch.
  if (cuCtxGetCurrent(&current) == CUDA_SUCCESS && current == c) return CUDA_SUCCESS;
  return cuCtxSetCurrent(c);
}

// A private event a deferred reply polls: recorded on a stream the guest
// waits for, so the reply never touches the stream itself (which the session
// may have destroyed by then). Destroyed in its context by whoever drops the
// last reference (the worker, when the reply went out or the session ended).
class polled_event {
 public:
  polled_event(CUcontext ctx, CUevent ev) : ctx_(ctx), ev_(ev) {}
  ~polled_event() {
    if (make_current(ctx_) == CUDA_SUCCESS) cuEventDestroy(ev_);
  }
  polled_event(const polled_event&) = delete;
  polled_event& operator=(const polled_event&) = delete;
  CUevent get() const { return ev_; }

 private:
  CUcontext ctx_;
  CUevent ev_;
};

// Records a private event on `s` (the context is current).
CUresult record_polled(CUcontext ctx, CUstream s, std::unique_ptr<polled_event>* out) {
  CUevent ev = nullptr;
  if (const CUresult r = cuEventCreate(&ev, CU_EVENT_DISABLE_TIMING); r != CUDA_SUCCESS) return r;
  auto owned = std::make_unique<polled_event>(ctx, ev);
  if (const CUresult r = cuEventRecord(ev, s); r != CUDA_SUCCESS) return r;
  *out = std::move(owned);
  return CUDA_SUCCESS;
}

// What a deferred reply returns for one query: nothing while the GPU is not
// there yet, else the status to reply with.
std::optional<cudaError_t> query_status(CUresult r) {
  if (r == CUDA_ERROR_NOT_READY) return std::nullopt;
  return to_cuda_error(r);
}

// A host function (vgpuHostFunc) on its way through a stream.
struct host_call {
  std::shared_ptr<guest_notifier> notifier;  // keeps the channel's ring mapped
  uint64_t token = 0;
};

// Runs on the driver's callback thread when the stream reaches the host
// function; the stream waits until the guest ran it (or is gone).
void CUDA_CB run_host_call(void* p) {
  const std::unique_ptr<host_call> call(static_cast<host_call*>(p));
  const uint64_t place = call->notifier->post(call->token);
  if (place == 0) return;  // the guest is gone
  call->notifier->wait_done(place);
}

}  // namespace

// Every handler that needs the session's context starts with this: created
// on first use (ensure_context), current for the call.
#define VGPU_IN_SESSION_CONTEXT(c)                                                 \
  if (const CUresult cur_ = ensure_context(); cur_ != CUDA_SUCCESS)                \
  return check(cur_, "cuCtxCreate/cuCtxSetCurrent", c)

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

void cuda_session::module_unload::operator()(CUmod_st* m) const {
  if (const CUresult r = cuModuleUnload(m); r != CUDA_SUCCESS) {
    spdlog::debug("[cuda-executor] cuModuleUnload failed: {}", error_name(r));
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
  // --- NVML (shim/nvml/): the context is created on first use (ensure_context),
  // not here: a guest that only asks NVML or device properties (Ollama's GPU
  // discovery) must not cost the GPU a context's memory.
  return std::unique_ptr<cuda_session>(
      new cuda_session(std::move(state), info, device, owned_context{}));
}

CUresult cuda_session::ensure_context() {
  if (!ctx_) {
    CUdevice dev = 0;
    if (const CUresult r = cuDeviceGet(&dev, device_); r != CUDA_SUCCESS) return r;
    // A context of its own per session: separate GPU address spaces, so one
    // guest can never name another's memory even by a forged address.
    CUcontext raw = nullptr;
    if (const CUresult r = cuCtxCreate(&raw, nullptr, 0, dev); r != CUDA_SUCCESS) return r;
    ctx_.reset(raw);
    spdlog::debug("[cuda-executor] session {}: context created on GPU {}", info_.session_id, device_);
    // cuCtxCreate *pushed* it on this worker thread's context stack, above the
    // context of whichever session ran here before. Sessions only ever switch
    // with cuCtxSetCurrent (which replaces the top), so a pushed entry would
    // stay below forever and, once its session ended, leave a destroyed
    // context on the stack that the driver makes current again when the top
    // is popped (a use after free inside libcuda, seen on the H100 with four
    // guests at once). Pop it and set it instead: the stack stays one deep.
    CUcontext popped = nullptr;
    if (const CUresult r = cuCtxPopCurrent(&popped); r != CUDA_SUCCESS) return r;
    return cuCtxSetCurrent(raw);
  }
  return make_current(ctx_.get());
}

cuda_session::cuda_session(std::shared_ptr<shared_state> state, session_info info, int device,
                           owned_context ctx)
    : state_(std::move(state)), info_(std::move(info)), budget_(info_.budget), device_(device), ctx_(std::move(ctx)) {
  spdlog::info("[cuda-executor] session {} opened for vm={} on GPU {} ({})", info_.session_id,
               info_.vm_id, device_, state_->gpus[static_cast<size_t>(device_)].name);
}

cuda_session::~cuda_session() {
  const uint64_t bytes = ledger_.bytes();
  {
    // The worker released host functions waiting on the guest before this
    // (notifier->mark_gone()), so nothing below waits on the guest. Modules
    // (with their functions and globals) go first, then streams and events,
    // then memory, all explicitly and in the context, before cuCtxDestroy
    // (ctx_'s deleter) releases the context.
    if (!ctx_) {
      // Never needed one (NVML and device queries only): nothing was created.
    } else if (const CUresult r = make_current(ctx_.get()); r != CUDA_SUCCESS) {
      spdlog::warn("[cuda-executor] session {}: cannot make its context current ({}); "
                   "cuCtxDestroy will release what it holds",
                   info_.session_id, error_name(r));
    }
    drop_graphs();  // graphs and execs first: they name streams, events, memory, functions
    blas_handles_.all().clear();  // cuBLAS handles first: they are bound to the streams below
    functions_.all().clear();
    globals_ = allocation_ledger{};
    uploads_.clear();
    modules_.clear();  // cuModuleUnload
    events_.all().clear();
    streams_.all().clear();
    release_vmm();  // driver API VMM (cuda_session_driver.cpp)
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
  const shared_event* e = events_.find(id);
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
  if (ledger_.contains(ptr, len) || globals_.contains(ptr, len) || mapped_covers(ptr, len)) {
    return cudaSuccess;
  }
  spdlog::debug("[cuda-executor] {}: [0x{:x}, +{}) is not inside an allocation of this session "
                "(vm={})",
                call, ptr, len, c.vm_id);
  return cudaErrorInvalidValue;
}

// --- device and version -----------------------------------------------------

cudaError_t cuda_session::on_cudaGetDeviceCount(call_context& c, int32_t* count) {
  // Needs no context (NVML asks it before any is made).
  int n = 0;
  const cudaError_t st = check(cuDeviceGetCount(&n), "cuDeviceGetCount", c);
  *count = n;
  return st;
}

cudaError_t cuda_session::on_cudaDriverGetVersion(call_context& c, int32_t* driverVersion) {
  // Needs no context (NVML asks it before any is made).
  int v = 0;
  const cudaError_t st = check(cuDriverGetVersion(&v), "cuDriverGetVersion", c);
  *driverVersion = v;
  return st;
}

cudaError_t cuda_session::on_cudaDeviceGetStreamPriorityRange(call_context& c, int32_t* least,
                                                             int32_t* greatest) {
  VGPU_IN_SESSION_CONTEXT(c);
  int lo = 0, hi = 0;
  const cudaError_t st =
      check(cuCtxGetStreamPriorityRange(&lo, &hi), "cuCtxGetStreamPriorityRange", c);
  *least = lo;
  *greatest = hi;
  return st;
}

// cudaLimit and CUlimit share their numbering.
cudaError_t cuda_session::on_cudaDeviceSetLimit(call_context& c, int32_t limit, uint64_t value) {
  VGPU_IN_SESSION_CONTEXT(c);
  if (limit < 0 || limit > cudaLimitPersistingL2CacheSize) return cudaErrorInvalidValue;  // as NVIDIA's runtime
  return check(cuCtxSetLimit(static_cast<CUlimit>(limit), value), "cuCtxSetLimit", c);
}

cudaError_t cuda_session::on_cudaDeviceGetLimit(call_context& c, uint64_t* pValue, int32_t limit) {
  VGPU_IN_SESSION_CONTEXT(c);
  if (limit < 0 || limit > cudaLimitPersistingL2CacheSize) return cudaErrorInvalidValue;  // as NVIDIA's runtime
  size_t v = 0;
  const cudaError_t st = check(cuCtxGetLimit(&v, static_cast<CUlimit>(limit)), "cuCtxGetLimit", c);
  *pValue = v;
  return st;
}

cudaError_t cuda_session::on_cudaCtxResetPersistingL2Cache(call_context& c) {
  VGPU_IN_SESSION_CONTEXT(c);
  return check(cuCtxResetPersistingL2Cache(), "cuCtxResetPersistingL2Cache", c);
}

cudaError_t cuda_session::on_cudaGetDeviceProperties(call_context& c, cudaDeviceProp* prop,
                                                     int32_t device) {
  // Needs no context (NVML asks it before any is made).
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
  // Needs no context (device attributes are per device).
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
  // The worker never blocks on the GPU: every stream of the session that
  // still has work gets a private event, and the reply goes out when all of
  // them completed. Only this thread submits work to the context, so a
  // stream found idle here stays idle until the reply.
  std::vector<CUstream> busy;
  const auto look = [&](CUstream s) -> CUresult {
    const CUresult r = cuStreamQuery(s);
    if (r == CUDA_ERROR_NOT_READY) {
      busy.push_back(s);
      return CUDA_SUCCESS;
    }
    return r;
  };
  // The NULL stream (it also waits for the blocking streams), the per-thread
  // stream, and every stream the session created (non-blocking ones too).
  if (cudaError_t st = check(look(nullptr), "cuStreamQuery", c); st != cudaSuccess) return st;
  if (cudaError_t st = check(look(CU_STREAM_PER_THREAD), "cuStreamQuery", c); st != cudaSuccess) {
    return st;
  }
  for (const auto& [id, s] : streams_.all()) {
    if (cudaError_t st = check(look(s.get()), "cuStreamQuery", c); st != cudaSuccess) return st;
  }
  if (busy.empty()) return cudaSuccess;
  auto pending = std::make_shared<std::vector<std::unique_ptr<polled_event>>>();
  pending->reserve(busy.size());
  for (CUstream s : busy) {
    std::unique_ptr<polled_event> ev;
    if (cudaError_t st = check(record_polled(ctx_.get(), s, &ev), "cuEventRecord", c);
        st != cudaSuccess) {
      return st;
    }
    pending->push_back(std::move(ev));
  }
  c.defer = [ctx = ctx_.get(), pending]() -> std::optional<cudaError_t> {
    if (const CUresult r = make_current(ctx); r != CUDA_SUCCESS) return to_cuda_error(r);
    while (!pending->empty()) {
      const CUresult r = cuEventQuery(pending->back()->get());
      if (r == CUDA_ERROR_NOT_READY) return std::nullopt;
      if (r != CUDA_SUCCESS) return to_cuda_error(r);
      pending->pop_back();
    }
    return cudaSuccess;
  };
  return cudaSuccess;
}

// --- memory -------------------------------------------------------------------

cudaError_t cuda_session::on_cudaMalloc(call_context& c, uint64_t* devPtr, uint64_t size) {
  VGPU_IN_SESSION_CONTEXT(c);
  *devPtr = 0;
  if (size == 0) return cudaSuccess;  // as CUDA: success, null pointer
  spdlog::debug("[cuda-executor] cuMemAlloc: allocating {} bytes on physical GPU (vm={})", size,
                c.vm_id);
  memory_charge charge(budget_, size, "cuMemAlloc");
  if (!charge.ok()) return cudaErrorMemoryAllocation;  // over the VM's memory limit
  CUdeviceptr p = 0;
  if (cudaError_t st = check(cuMemAlloc(&p, size), "cuMemAlloc", c); st != cudaSuccess) return st;
  charge.keep();  // cudaFree (or the session's end) gives it back
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
  budget_.refund(size);
  return cudaSuccess;
}

// The VM's view (memory_budget::view) of the driver's figures. NVML's memory
// info and cuMemGetInfo in the guest are answered by this call too, so the
// three always agree.
cudaError_t cuda_session::on_cudaMemGetInfo(call_context& c, uint64_t* free, uint64_t* total) {
  uint64_t real_free = 0;
  uint64_t real_total = 0;
  // Before the session has a context (NVML's memory query), the host's NVML
  // answers, so that asking does not create one (cuda_session_nvml.cpp).
  if (ctx_ || !memory_without_context(&real_free, &real_total)) {
    VGPU_IN_SESSION_CONTEXT(c);
    size_t f = 0;
    size_t t = 0;
    if (const cudaError_t st = check(cuMemGetInfo(&f, &t), "cuMemGetInfo", c); st != cudaSuccess) {
      *free = 0;
      *total = 0;
      return st;
    }
    real_free = f;
    real_total = t;
  }
  budget_.view(real_free, real_total, free, total);
  return cudaSuccess;
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
  if (cudaError_t st = capture_refuses(s, "vgpuMemcpyHtoD", c); st != cudaSuccess) return st;
  if (cudaError_t st = check_range("vgpuMemcpyHtoD", c, dst, src.size); st != cudaSuccess) {
    return st;
  }
  if (flags & kAsyncFlag) {
    // The data area is pinned (executor::pin_region), so the copy really is
    // asynchronous: the guest may reuse the chunk's slot only after it read
    // the reply, which therefore waits for the copy (deferred, never blocking).
    if (cudaError_t st = check(cuMemcpyHtoDAsync(dst, src.data, src.size, s), "cuMemcpyHtoDAsync", c);
        st != cudaSuccess) {
      return st;
    }
    return reply_when_done(c, s);
  }
  return check(cuMemcpyHtoD(dst, src.data, src.size), "cuMemcpyHtoD", c);
}

cudaError_t cuda_session::reply_when_done(call_context& c, CUstream s) {
  std::unique_ptr<polled_event> ev;
  if (cudaError_t st = check(record_polled(ctx_.get(), s, &ev), "cuEventRecord", c); st != cudaSuccess) return st;
  c.defer = [ctx = ctx_.get(), ev = std::shared_ptr<polled_event>(std::move(ev))]() -> std::optional<cudaError_t> {
    if (const CUresult r = make_current(ctx); r != CUDA_SUCCESS) return to_cuda_error(r);
    return query_status(cuEventQuery(ev->get()));
  };
  return cudaSuccess;
}

cudaError_t cuda_session::on_vgpuMemcpyDtoH(call_context& c, mut_bytes dst, uint64_t src,
                                            uint64_t stream, uint32_t flags) {
  VGPU_IN_SESSION_CONTEXT(c);
  CUstream s = nullptr;
  if (!resolve_stream(stream, &s)) return bad_handle("vgpuMemcpyDtoH", "stream", stream, c);
  if (dst.size == 0) return cudaSuccess;
  if (cudaError_t st = capture_refuses(s, "vgpuMemcpyDtoH", c); st != cudaSuccess) return st;
  if (cudaError_t st = check_range("vgpuMemcpyDtoH", c, src, dst.size); st != cudaSuccess) {
    return st;
  }
  if (flags & kAsyncFlag) {
    if (cudaError_t st =
            check(cuMemcpyDtoHAsync(dst.data, src, dst.size, s), "cuMemcpyDtoHAsync", c);
        st != cudaSuccess) {
      return st;
    }
    // The bytes must be in the data area when the reply goes back: it is sent
    // when the copy completes, and the worker serves others meanwhile.
    return reply_when_done(c, s);
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

// cuMemsetD16/D32 with a pattern of differing bytes (the guest sends the
// byte-wise ones as vgpuMemsetAsync); stream-ordered.
cudaError_t cuda_session::on_vgpuMemsetElem(call_context& c, uint64_t dst, uint32_t value,
                                            uint32_t elemSize, uint64_t count, uint64_t stream) {
  VGPU_IN_SESSION_CONTEXT(c);
  CUstream s = nullptr;
  if (!resolve_stream(stream, &s)) return bad_handle("vgpuMemsetElem", "stream", stream, c);
  if ((elemSize != 2 && elemSize != 4) || dst % elemSize != 0) return cudaErrorInvalidValue;
  if (count == 0) return cudaSuccess;
  if (count > UINT64_MAX / elemSize) return cudaErrorInvalidValue;
  if (cudaError_t st = check_range("vgpuMemsetElem", c, dst, count * elemSize); st != cudaSuccess) return st;
  if (elemSize == 2)
    return check(cuMemsetD16Async(dst, static_cast<unsigned short>(value), count, s), "cuMemsetD16Async", c);
  return check(cuMemsetD32Async(dst, value, count, s), "cuMemsetD32Async", c);
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
  const CUresult q = cuStreamQuery(s);
  if (q != CUDA_ERROR_NOT_READY) return check(q, "cuStreamQuery", c);
  // Not there yet: the reply goes out when a private event recorded here
  // completes (the worker polls it, serving others meanwhile). The event, not
  // the stream, is polled: the stream may be gone by then.
  return reply_when_done(c, s);
}

cudaError_t cuda_session::on_cudaStreamQuery(call_context& c, uint64_t stream) {
  VGPU_IN_SESSION_CONTEXT(c);
  CUstream s = nullptr;
  if (!resolve_stream(stream, &s)) return bad_handle("cudaStreamQuery", "stream", stream, c);
  return check(cuStreamQuery(s), "cuStreamQuery", c);
}

// A stream query answered by the driver: `query(CUstream, T*)` into *out.
template <typename T, typename Out, typename Query>
cudaError_t cuda_session::stream_query(call_context& c, const char* call, const char* driver_call,
                                       uint64_t stream, Out* out, Query query) {
  VGPU_IN_SESSION_CONTEXT(c);
  CUstream s = nullptr;
  if (!resolve_stream(stream, &s)) return bad_handle(call, "stream", stream, c);
  T v{};
  const cudaError_t st = check(query(s, &v), driver_call, c);
  *out = static_cast<Out>(v);
  return st;
}

cudaError_t cuda_session::on_cudaStreamGetPriority(call_context& c, uint64_t stream,
                                                   int32_t* priority) {
  return stream_query<int>(c, "cudaStreamGetPriority", "cuStreamGetPriority", stream, priority,
                           cuStreamGetPriority);
}

cudaError_t cuda_session::on_cudaStreamGetFlags(call_context& c, uint64_t stream, uint32_t* flags) {
  return stream_query<unsigned>(c, "cudaStreamGetFlags", "cuStreamGetFlags", stream, flags,
                                cuStreamGetFlags);
}

cudaError_t cuda_session::on_cudaStreamGetId(call_context& c, uint64_t stream, uint64_t* streamId) {
  return stream_query<unsigned long long>(c, "cudaStreamGetId", "cuStreamGetId", stream, streamId,
                                          cuStreamGetId);
}

// Every stream of a session lives in its context, on the session's device.
cudaError_t cuda_session::on_cudaStreamGetDevice(call_context& c, uint64_t stream, int32_t* device) {
  VGPU_IN_SESSION_CONTEXT(c);
  CUstream s = nullptr;
  if (!resolve_stream(stream, &s)) return bad_handle("cudaStreamGetDevice", "stream", stream, c);
  *device = device_;
  return cudaSuccess;
}

// Pitched device-to-device copy: both pitched ranges must lie in the
// session's memory (first byte of the first row to the last of the last).
cudaError_t cuda_session::on_vgpuMemcpy2DDtoDAsync(call_context& c, uint64_t dst, uint64_t dpitch,
                                                   uint64_t src, uint64_t spitch, uint64_t width,
                                                   uint64_t height, uint64_t stream) {
  VGPU_IN_SESSION_CONTEXT(c);
  CUstream s = nullptr;
  if (!resolve_stream(stream, &s)) return bad_handle("vgpuMemcpy2DDtoDAsync", "stream", stream, c);
  if (width == 0 || height == 0) return cudaSuccess;
  if (width > dpitch || width > spitch) return cudaErrorInvalidPitchValue;
  const uint64_t rows = height - 1;
  if (rows > (UINT64_MAX - width) / std::max(dpitch, spitch)) return cudaErrorInvalidValue;
  if (cudaError_t st = check_range("vgpuMemcpy2DDtoDAsync", c, src, rows * spitch + width); st != cudaSuccess)
    return st;
  if (cudaError_t st = check_range("vgpuMemcpy2DDtoDAsync", c, dst, rows * dpitch + width); st != cudaSuccess)
    return st;
  CUDA_MEMCPY2D m{};
  m.srcMemoryType = CU_MEMORYTYPE_DEVICE;
  m.srcDevice = src;
  m.srcPitch = spitch;
  m.dstMemoryType = CU_MEMORYTYPE_DEVICE;
  m.dstDevice = dst;
  m.dstPitch = dpitch;
  m.WidthInBytes = width;
  m.Height = height;
  return check(cuMemcpy2DAsync(&m, s), "cuMemcpy2DAsync", c);
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
  *event = events_.add(shared_event(raw, event_destroy{}));
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

cudaError_t cuda_session::on_cudaEventRecordWithFlags(call_context& c, uint64_t event, uint64_t stream,
                                                      uint32_t flags) {
  VGPU_IN_SESSION_CONTEXT(c);
  const CUevent e = find_event(event);
  if (e == nullptr) return bad_handle("cudaEventRecordWithFlags", "event", event, c);
  CUstream s = nullptr;
  if (!resolve_stream(stream, &s)) return bad_handle("cudaEventRecordWithFlags", "stream", stream, c);
  // cudaEventRecordDefault / External == CU_EVENT_RECORD_DEFAULT / _EXTERNAL.
  if (flags != cudaEventRecordDefault && flags != cudaEventRecordExternal) return cudaErrorInvalidValue;
  return check(cuEventRecordWithFlags(e, s, flags), "cuEventRecordWithFlags", c);
}

cudaError_t cuda_session::on_cudaEventSynchronize(call_context& c, uint64_t event) {
  VGPU_IN_SESSION_CONTEXT(c);
  const CUevent e = find_event(event);
  if (e == nullptr) return bad_handle("cudaEventSynchronize", "event", event, c);
  const CUresult q = cuEventQuery(e);
  if (q != CUDA_ERROR_NOT_READY) return check(q, "cuEventQuery", c);
  // The reply goes out when the event completes; the deferred reply holds a
  // reference, so a cudaEventDestroy meanwhile cannot free what it polls.
  c.defer = [ctx = ctx_.get(), ev = *events_.find(event)]() -> std::optional<cudaError_t> {
    if (const CUresult r = make_current(ctx); r != CUDA_SUCCESS) return to_cuda_error(r);
    return query_status(cuEventQuery(ev.get()));
  };
  return cudaSuccess;
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
  if (events_.find(event) == nullptr) return bad_handle("cudaEventDestroy", "event", event, c);
  // The table's reference goes; cuEventDestroy runs now (event_destroy logs
  // a failure), or with the last look of a deferred cudaEventSynchronize that
  // still polls it.
  events_.erase(event);
  return cudaSuccess;
}


// --- stream-ordered calls without host data (posted) ------------------------
// The same checks as the synchronous forms; an error is kept by the worker
// and reported at the channel's next syncpoint.

cudaError_t cuda_session::on_vgpuMemsetAsync(call_context& c, uint64_t dst, int32_t value,
                                             uint64_t count, uint64_t stream) {
  return on_vgpuMemset(c, dst, value, count, stream, kAsyncFlag);
}

cudaError_t cuda_session::on_vgpuMemcpyDtoDAsync(call_context& c, uint64_t dst, uint64_t src,
                                                 uint64_t count, uint64_t stream) {
  return on_vgpuMemcpyDtoD(c, dst, src, count, stream, kAsyncFlag);
}

cudaError_t cuda_session::on_cudaStreamWaitEvent(call_context& c, uint64_t stream, uint64_t event,
                                                 uint32_t flags) {
  VGPU_IN_SESSION_CONTEXT(c);
  CUstream s = nullptr;
  if (!resolve_stream(stream, &s)) return bad_handle("cudaStreamWaitEvent", "stream", stream, c);
  const CUevent e = find_event(event);
  if (e == nullptr) return bad_handle("cudaStreamWaitEvent", "event", event, c);
  // cudaEventWaitDefault / cudaEventWaitExternal == CU_EVENT_WAIT_DEFAULT / _EXTERNAL.
  if (flags != cudaEventWaitDefault && flags != cudaEventWaitExternal) return cudaErrorInvalidValue;
  return check(cuStreamWaitEvent(s, e, flags), "cuStreamWaitEvent", c);
}

// --- modules and kernels --------------------------------------------------------

template <typename F>
CUresult cuda_session::with_loaded(CUfunction fn, F&& call) {
  CUresult r = call();
  if (r == CUDA_ERROR_FUNCTION_NOT_LOADED && cuFuncLoad(fn) == CUDA_SUCCESS) r = call();
  return r;
}

cudaError_t cuda_session::on_vgpuModuleLoad(call_context& c, uint64_t module, uint64_t offset,
                                            uint64_t total, const_bytes image) {
  VGPU_IN_SESSION_CONTEXT(c);
  if (modules_.count(module) != 0) {
    spdlog::debug("[cuda-executor] vgpuModuleLoad: module {:#x} is loaded already (vm={})",
                  module, c.vm_id);
    return cudaErrorInvalidValue;
  }
  std::vector<uint8_t> bytes;
  const char* why = nullptr;
  switch (uploads_.add(module, offset, total, image, &bytes, &why)) {
    case module_uploads::result::more:
      return cudaSuccess;
    case module_uploads::result::refused:
      spdlog::debug("[cuda-executor] vgpuModuleLoad: module {:#x} chunk at {} (+{}) of {}: {} (vm={})", module,
                    offset, image.size, total, why, c.vm_id);
      return cudaErrorInvalidValue;
    case module_uploads::result::no_memory:
      return cudaErrorMemoryAllocation;
    case module_uploads::result::complete:
      break;
  }
  // Complete. A NUL after the image lets a PTX text image load too; a fatbin
  // or cubin carries its own size. cuModuleLoadData (not cuLibraryLoadData):
  // the session owns its own context, a module is that context's, and the
  // driver's lazy loading (CUDA_MODULE_LOADING, LAZY by default) applies to
  // modules just as well: a kernel is loaded at its first use.
  bytes.push_back(0);
  if (spdlog::should_log(spdlog::level::debug)) {
    spdlog::debug("[cuda-executor] cuModuleLoadData: module {:#x}, {} bytes (vm={})", module,
                  total, c.vm_id);
  }
  CUmodule m = nullptr;
  if (cudaError_t st = check(cuModuleLoadData(&m, bytes.data()), "cuModuleLoadData", c);
      st != cudaSuccess) {
    return st;
  }
  modules_.emplace(module, loaded_module{owned_module(m), {}});
  return cudaSuccess;
}

cudaError_t cuda_session::on_vgpuModuleUnload(call_context& c, uint64_t module) {
  VGPU_IN_SESSION_CONTEXT(c);
  const auto it = modules_.find(module);
  if (it == modules_.end()) {
    // An upload the guest abandons: drop what arrived.
    if (uploads_.drop(module)) return cudaSuccess;
    return bad_handle("vgpuModuleUnload", "module", module, c);
  }
  // Its function ids and globals go with it: a later launch or copy naming
  // them is refused here instead of reaching unloaded code.
  auto& fns = functions_.all();
  for (auto f = fns.begin(); f != fns.end();) {
    f = f->second.module == module ? fns.erase(f) : std::next(f);
  }
  for (const uint64_t base : it->second.globals) globals_.remove(base);
  CUmodule m = it->second.module.release();
  modules_.erase(it);
  return check(cuModuleUnload(m), "cuModuleUnload", c);
}

namespace {
// The guest's name bytes, up to a NUL or the end of the span.
std::string name_of(const const_bytes& name) {
  const char* p = reinterpret_cast<const char*>(name.data);
  const void* nul = name.size != 0 ? std::memchr(p, 0, name.size) : nullptr;
  const size_t len = nul != nullptr ? static_cast<size_t>(static_cast<const char*>(nul) - p)
                                    : static_cast<size_t>(name.size);
  return std::string(p, len);
}
}  // namespace

cudaError_t cuda_session::on_vgpuFunctionGet(call_context& c, uint64_t module, const_bytes name,
                                             mut_bytes layout, uint64_t* function,
                                             uint32_t* paramCount) {
  VGPU_IN_SESSION_CONTEXT(c);
  const auto mod = modules_.find(module);
  if (mod == modules_.end()) return bad_handle("vgpuFunctionGet", "module", module, c);
  const std::string kernel = name_of(name);
  CUfunction fn = nullptr;
  const CUresult r = cuModuleGetFunction(&fn, mod->second.module.get(), kernel.c_str());
  if (r == CUDA_ERROR_NOT_FOUND) {
    spdlog::debug("[cuda-executor] vgpuFunctionGet: no kernel '{}' in module {:#x} (vm={})",
                  kernel, module, c.vm_id);
    return cudaErrorInvalidDeviceFunction;
  }
  if (cudaError_t st = check(r, "cuModuleGetFunction", c); st != cudaSuccess) return st;

  // The layout, one (u32 offset, u32 size) pair per parameter, until the
  // driver says there is no parameter i. CUDA's 32 KiB parameter limit
  // bounds the count; the cap only guards against a driver that never stops.
  constexpr uint32_t kMaxParams = 1u << 15;
  uint32_t count = 0;
  uint64_t block = 0;
  for (;; ++count) {
    size_t off = 0;
    size_t size = 0;
    const CUresult pr =
        with_loaded(fn, [&] { return cuFuncGetParamInfo(fn, count, &off, &size); });
    if (pr == CUDA_ERROR_INVALID_VALUE) break;  // past the last parameter
    if (cudaError_t st = check(pr, "cuFuncGetParamInfo", c); st != cudaSuccess) return st;
    if (count >= kMaxParams || off > UINT32_MAX || size > UINT32_MAX) return cudaErrorUnknown;
    if (uint64_t{count} * 8 + 8 > layout.size) {
      spdlog::debug("[cuda-executor] vgpuFunctionGet: '{}': layout area of {} bytes is too "
                    "small (vm={})",
                    kernel, layout.size, c.vm_id);
      return cudaErrorInvalidValue;
    }
    const uint32_t pair[2] = {static_cast<uint32_t>(off), static_cast<uint32_t>(size)};
    std::memcpy(layout.data + uint64_t{count} * 8, pair, sizeof pair);
    block = std::max<uint64_t>(block, uint64_t{off} + size);
  }
  *function = functions_.add(function_entry{fn, module, block});
  *paramCount = count;
  return cudaSuccess;
}

cudaError_t cuda_session::on_vgpuModuleGetGlobal(call_context& c, uint64_t module,
                                                 const_bytes name, uint64_t* dptr,
                                                 uint64_t* bytes) {
  VGPU_IN_SESSION_CONTEXT(c);
  const auto mod = modules_.find(module);
  if (mod == modules_.end()) return bad_handle("vgpuModuleGetGlobal", "module", module, c);
  const std::string symbol = name_of(name);
  CUdeviceptr p = 0;
  size_t size = 0;
  const CUresult r = cuModuleGetGlobal(&p, &size, mod->second.module.get(), symbol.c_str());
  if (r == CUDA_ERROR_NOT_FOUND) {
    spdlog::debug("[cuda-executor] vgpuModuleGetGlobal: no global '{}' in module {:#x} (vm={})",
                  symbol, module, c.vm_id);
    return cudaErrorInvalidSymbol;
  }
  if (cudaError_t st = check(r, "cuModuleGetGlobal", c); st != cudaSuccess) return st;
  if (size != 0 && !globals_.contains(p, size)) {
    globals_.add(p, size);
    mod->second.globals.push_back(p);
  }
  *dptr = p;
  *bytes = size;
  return cudaSuccess;
}

// The hot path: posted, measured against native launch rate. No allocation,
// no logging unless a failure is logged at debug, one hash lookup per handle.
cudaError_t cuda_session::on_vgpuLaunchKernel(call_context& c, uint64_t function, uint32_t gridX,
                                              uint32_t gridY, uint32_t gridZ, uint32_t blockX,
                                              uint32_t blockY, uint32_t blockZ,
                                              uint32_t sharedMem, uint64_t stream,
                                              uint32_t clusterX, uint32_t clusterY,
                                              uint32_t clusterZ, uint32_t launchFlags,
                                              const_bytes params) {
  VGPU_IN_SESSION_CONTEXT(c);
  const function_entry* f = find_function(function);
  if (f == nullptr) return bad_handle("vgpuLaunchKernel", "function", function, c);
  CUstream s = nullptr;
  if (!resolve_stream(stream, &s)) return bad_handle("vgpuLaunchKernel", "stream", stream, c);
  if (params.size != f->param_bytes) {
    if (spdlog::should_log(spdlog::level::debug)) {
      spdlog::debug("[cuda-executor] vgpuLaunchKernel: {} parameter bytes, the kernel takes {} "
                    "(vm={})",
                    params.size, f->param_bytes, c.vm_id);
    }
    return cudaErrorInvalidValue;
  }
  CUlaunchAttribute attrs[3];
  unsigned n = 0;
  if (uint64_t{clusterX} * clusterY * clusterZ > 0) {
    attrs[n].id = CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION;
    attrs[n].value.clusterDim.x = clusterX;
    attrs[n].value.clusterDim.y = clusterY;
    attrs[n].value.clusterDim.z = clusterZ;
    ++n;
  }
  if (launchFlags & kLaunchCooperative) {
    attrs[n].id = CU_LAUNCH_ATTRIBUTE_COOPERATIVE;
    attrs[n].value.cooperative = 1;
    ++n;
  }
  if (launchFlags & kLaunchProgrammatic) {
    attrs[n].id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
    attrs[n].value.programmaticStreamSerializationAllowed = 1;
    ++n;
  }
  CUlaunchConfig cfg;
  cfg.gridDimX = gridX;
  cfg.gridDimY = gridY;
  cfg.gridDimZ = gridZ;
  cfg.blockDimX = blockX;
  cfg.blockDimY = blockY;
  cfg.blockDimZ = blockZ;
  cfg.sharedMemBytes = sharedMem;
  cfg.hStream = s;
  cfg.attrs = n != 0 ? attrs : nullptr;
  cfg.numAttrs = n;
  // The guest packed the block by the layout vgpuFunctionGet gave it; the
  // driver copies it before cuLaunchKernelEx returns.
  size_t size = params.size;
  void* extra[] = {CU_LAUNCH_PARAM_BUFFER_POINTER, const_cast<uint8_t*>(params.data),
                   CU_LAUNCH_PARAM_BUFFER_SIZE, &size, CU_LAUNCH_PARAM_END};
  return check(cuLaunchKernelEx(&cfg, f->fn, nullptr, size != 0 ? extra : nullptr),
               "cuLaunchKernelEx", c);
}

cudaError_t cuda_session::on_vgpuFuncGetAttributes(call_context& c, cudaFuncAttributes* attr,
                                                   uint64_t function) {
  VGPU_IN_SESSION_CONTEXT(c);
  const function_entry* f = find_function(function);
  if (f == nullptr) return bad_handle("vgpuFuncGetAttributes", "function", function, c);
  CUresult r = CUDA_SUCCESS;
  const auto get = [&](CUfunction_attribute a) {
    int v = 0;
    if (r == CUDA_SUCCESS) {
      r = with_loaded(f->fn, [&] { return cuFuncGetAttribute(&v, a, f->fn); });
    }
    return v;
  };
  cudaFuncAttributes out;
  std::memset(static_cast<void*>(&out), 0, sizeof out);
  out.maxThreadsPerBlock = get(CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK);
  out.sharedSizeBytes = static_cast<size_t>(get(CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES));
  out.constSizeBytes = static_cast<size_t>(get(CU_FUNC_ATTRIBUTE_CONST_SIZE_BYTES));
  out.localSizeBytes = static_cast<size_t>(get(CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES));
  out.numRegs = get(CU_FUNC_ATTRIBUTE_NUM_REGS);
  out.ptxVersion = get(CU_FUNC_ATTRIBUTE_PTX_VERSION);
  out.binaryVersion = get(CU_FUNC_ATTRIBUTE_BINARY_VERSION);
  out.cacheModeCA = get(CU_FUNC_ATTRIBUTE_CACHE_MODE_CA);
  out.maxDynamicSharedSizeBytes = get(CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES);
  out.preferredShmemCarveout = get(CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT);
  out.clusterDimMustBeSet = get(CU_FUNC_ATTRIBUTE_CLUSTER_SIZE_MUST_BE_SET);
  out.requiredClusterWidth = get(CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_WIDTH);
  out.requiredClusterHeight = get(CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_HEIGHT);
  out.requiredClusterDepth = get(CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_DEPTH);
  out.clusterSchedulingPolicyPreference =
      get(CU_FUNC_ATTRIBUTE_CLUSTER_SCHEDULING_POLICY_PREFERENCE);
  out.nonPortableClusterSizeAllowed = get(CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED);
  if (cudaError_t st = check(r, "cuFuncGetAttribute", c); st != cudaSuccess) return st;
  *attr = out;
  return cudaSuccess;
}

cudaError_t cuda_session::on_vgpuFuncSetAttribute(call_context& c, uint64_t function, int32_t attr,
                                                  int32_t value) {
  VGPU_IN_SESSION_CONTEXT(c);
  const function_entry* f = find_function(function);
  if (f == nullptr) return bad_handle("vgpuFuncSetAttribute", "function", function, c);
  // cudaFuncAttribute starts at MaxDynamicSharedMemorySize (8) and shares
  // CUfunction_attribute's numbering from there on; 0..7 are read-only.
  if (attr < static_cast<int32_t>(cudaFuncAttributeMaxDynamicSharedMemorySize) ||
      attr >= static_cast<int32_t>(cudaFuncAttributeMax)) {
    return cudaErrorInvalidValue;
  }
  return check(with_loaded(f->fn,
                           [&] {
                             return cuFuncSetAttribute(
                                 f->fn, static_cast<CUfunction_attribute>(attr), value);
                           }),
               "cuFuncSetAttribute", c);
}

cudaError_t cuda_session::on_vgpuOccupancyMaxActiveBlocks(call_context& c, int32_t* numBlocks,
                                                          uint64_t function, int32_t blockSize,
                                                          uint64_t dynamicSMemSize,
                                                          uint32_t flags) {
  VGPU_IN_SESSION_CONTEXT(c);
  const function_entry* f = find_function(function);
  if (f == nullptr) return bad_handle("vgpuOccupancyMaxActiveBlocks", "function", function, c);
  // cudaOccupancyDefault / DisableCachingOverride == CU_OCCUPANCY_DEFAULT / _DISABLE_CACHING_OVERRIDE.
  if ((flags & ~static_cast<uint32_t>(cudaOccupancyDisableCachingOverride)) != 0) {
    return cudaErrorInvalidValue;
  }
  int n = 0;
  const cudaError_t st = check(with_loaded(f->fn,
                                           [&] {
                                             return cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags(
                                                 &n, f->fn, blockSize,
                                                 static_cast<size_t>(dynamicSMemSize), flags);
                                           }),
                               "cuOccupancyMaxActiveBlocksPerMultiprocessorWithFlags", c);
  *numBlocks = n;
  return st;
}

cudaError_t cuda_session::on_vgpuHostFunc(call_context& c, uint64_t stream, uint64_t token) {
  VGPU_IN_SESSION_CONTEXT(c);
  CUstream s = nullptr;
  if (!resolve_stream(stream, &s)) return bad_handle("vgpuHostFunc", "stream", stream, c);
  if (!c.notifier) return cudaErrorNotSupported;  // a channel without a notify ring
  if (cudaError_t st = cudaSuccess; capture_host_func(c, s, token, &st)) return st;  // a host node
  // Owned by the callback from here on (deleted there), or below on failure.
  auto call = std::make_unique<host_call>(host_call{c.notifier, token});
  if (cudaError_t st = check(cuLaunchHostFunc(s, run_host_call, call.get()), "cuLaunchHostFunc", c);
      st != cudaSuccess) {
    return st;
  }
  call.release();
  return cudaSuccess;
}

cudaError_t cuda_session::on_vgpuDebugLaunchRecord(call_context& /*c*/, uint32_t /*index*/,
                                                   mut_bytes /*out*/, uint32_t* size) {
  *size = 0;
  return cudaErrorNotSupported;  // only the reference executor records launches
}

}  // namespace vgpu::host::cuda

#undef VGPU_IN_SESSION_CONTEXT
