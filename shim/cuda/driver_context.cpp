// Contexts. A guest process has one session on the mediator, and the session
// is one CUDA context there; the driver API shows it as each device's primary
// context. cuCtxCreate returns it too (counted), so a program that creates,
// uses and destroys a context (Ollama's GPU discovery does) works; separate
// address spaces per created context are not modelled.
#include <mutex>
#include <vector>

#include <cuda.h>

#include "guest_remote.h"
#include "shim/cuda/driver_common.h"
#include "shim/transport/guest_call.h"

namespace vgpu::shim {
namespace {

constexpr int kMaxDevices = 64;

// The handle a context is known by: the address of its device's slot.
struct context_slot {
  int device;
  int refs;
};

std::mutex g_mutex;
context_slot g_slots[kMaxDevices];
bool g_slots_ready = false;

thread_local std::vector<CUcontext> t_stack;  // the thread's context stack; back() is current

CUcontext handle_of(int device) {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (!g_slots_ready) {
    for (int i = 0; i < kMaxDevices; ++i) g_slots[i] = {i, 0};
    g_slots_ready = true;
  }
  return reinterpret_cast<CUcontext>(&g_slots[device]);
}

context_slot* slot_of(CUcontext ctx) {
  auto* s = reinterpret_cast<context_slot*>(ctx);
  return s >= g_slots && s < g_slots + kMaxDevices ? s : nullptr;
}

CUresult check_device(CUdevice dev) {
  if (dev < 0 || dev >= kMaxDevices) return CUDA_ERROR_INVALID_DEVICE;
  int count = 0;
  if (const cudaError_t st = remote::cudaGetDeviceCount(&count); st != cudaSuccess) return to_cu(st);
  return dev < count ? CUDA_SUCCESS : CUDA_ERROR_INVALID_DEVICE;
}

void make_current(CUcontext ctx) {
  if (auto* s = slot_of(ctx)) set_thread_device(s->device);
}

}  // namespace

CUcontext context_of_device(int device) {
  return device >= 0 && device < kMaxDevices ? handle_of(device) : nullptr;
}

}  // namespace vgpu::shim

using namespace vgpu::shim;

extern "C" CUresult cuDevicePrimaryCtxRetain(CUcontext* pctx, CUdevice dev) {
  VGPU_REQUIRE_INIT();
  if (!pctx) return CUDA_ERROR_INVALID_VALUE;
  if (const CUresult r = check_device(dev); r != CUDA_SUCCESS) return r;
  *pctx = handle_of(dev);
  std::lock_guard<std::mutex> lock(g_mutex);
  ++slot_of(*pctx)->refs;
  return CUDA_SUCCESS;
}

extern "C" CUresult cuDevicePrimaryCtxRelease(CUdevice dev) {  // cuDevicePrimaryCtxRelease_v2
  VGPU_REQUIRE_INIT();
  if (const CUresult r = check_device(dev); r != CUDA_SUCCESS) return r;
  context_slot* s = slot_of(handle_of(dev));
  std::lock_guard<std::mutex> lock(g_mutex);
  if (s->refs == 0) return CUDA_ERROR_INVALID_CONTEXT;
  --s->refs;
  return CUDA_SUCCESS;
}

extern "C" CUresult cuCtxCreate(CUcontext* pctx, CUctxCreateParams* params, unsigned int flags,
                                CUdevice dev) {  // cuCtxCreate_v4
  VGPU_REQUIRE_INIT();
  (void)params;  // execution affinity and CIG parameters: not carried yet
  (void)flags;   // scheduling hints only
  if (!pctx) return CUDA_ERROR_INVALID_VALUE;
  if (const CUresult r = check_device(dev); r != CUDA_SUCCESS) return r;
  *pctx = handle_of(dev);
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    ++slot_of(*pctx)->refs;
  }
  t_stack.push_back(*pctx);  // a created context is current, as in CUDA
  make_current(*pctx);
  return CUDA_SUCCESS;
}

extern "C" CUresult cuCtxDestroy(CUcontext ctx) {  // cuCtxDestroy_v2
  VGPU_REQUIRE_INIT();
  context_slot* s = slot_of(ctx);
  if (!s) return CUDA_ERROR_INVALID_CONTEXT;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    if (s->refs == 0) return CUDA_ERROR_INVALID_CONTEXT;
    --s->refs;
  }
  if (!t_stack.empty() && t_stack.back() == ctx) t_stack.pop_back();
  return CUDA_SUCCESS;
}

extern "C" CUresult cuCtxGetCurrent(CUcontext* pctx) {
  VGPU_REQUIRE_INIT();
  if (!pctx) return CUDA_ERROR_INVALID_VALUE;
  *pctx = t_stack.empty() ? nullptr : t_stack.back();
  return CUDA_SUCCESS;
}

extern "C" CUresult cuCtxSetCurrent(CUcontext ctx) {
  VGPU_REQUIRE_INIT();
  if (ctx && !slot_of(ctx)) return CUDA_ERROR_INVALID_CONTEXT;
  if (t_stack.empty()) {
    if (ctx) t_stack.push_back(ctx);
  } else if (ctx) {
    t_stack.back() = ctx;
  } else {
    t_stack.pop_back();
  }
  make_current(ctx);
  return CUDA_SUCCESS;
}

extern "C" CUresult cuCtxPushCurrent(CUcontext ctx) {  // cuCtxPushCurrent_v2
  VGPU_REQUIRE_INIT();
  if (!slot_of(ctx)) return CUDA_ERROR_INVALID_CONTEXT;
  t_stack.push_back(ctx);
  make_current(ctx);
  return CUDA_SUCCESS;
}

extern "C" CUresult cuCtxPopCurrent(CUcontext* pctx) {  // cuCtxPopCurrent_v2
  VGPU_REQUIRE_INIT();
  if (t_stack.empty()) return CUDA_ERROR_INVALID_CONTEXT;
  if (pctx) *pctx = t_stack.back();
  t_stack.pop_back();
  if (!t_stack.empty()) make_current(t_stack.back());
  return CUDA_SUCCESS;
}

extern "C" CUresult cuCtxGetDevice(CUdevice* device) {
  VGPU_REQUIRE_INIT();
  if (!device) return CUDA_ERROR_INVALID_VALUE;
  if (t_stack.empty()) return CUDA_ERROR_INVALID_CONTEXT;
  *device = slot_of(t_stack.back())->device;
  return CUDA_SUCCESS;
}

extern "C" CUresult cuCtxSynchronize() {
  VGPU_REQUIRE_INIT();
  if (t_stack.empty()) return CUDA_ERROR_INVALID_CONTEXT;
  return to_cu(vgpu::remote::cudaDeviceSynchronize());
}

// The primary context's flags are kept in the guest: they are scheduling and
// host-mapping hints the session's context on the host does not change.
namespace vgpu::shim {
namespace {
unsigned g_primary_flags[kMaxDevices] = {};
}  // namespace
}  // namespace vgpu::shim

// Active: retained through the driver API, or in use by the runtime (the
// runtime uses the session from its first call on, as NVIDIA's runtime
// retains the primary context). PyTorch asks this before it initialises.
extern "C" CUresult cuDevicePrimaryCtxGetState(CUdevice dev, unsigned int* flags, int* active) {
  VGPU_REQUIRE_INIT();
  if (!flags || !active) return CUDA_ERROR_INVALID_VALUE;
  if (const CUresult r = check_device(dev); r != CUDA_SUCCESS) return r;
  context_slot* s = slot_of(handle_of(dev));
  std::lock_guard<std::mutex> lock(g_mutex);
  *flags = g_primary_flags[dev];
  *active = s->refs > 0 || channel_connected() ? 1 : 0;
  return CUDA_SUCCESS;
}

extern "C" CUresult cuDevicePrimaryCtxSetFlags(CUdevice dev, unsigned int flags) {  // _v2
  VGPU_REQUIRE_INIT();
  if (const CUresult r = check_device(dev); r != CUDA_SUCCESS) return r;
  if (flags & ~0xffu) return CUDA_ERROR_INVALID_VALUE;
  std::lock_guard<std::mutex> lock(g_mutex);
  g_primary_flags[dev] = flags;
  return CUDA_SUCCESS;
}

// Resetting would free everything the process allocated on the device; the
// session's memory is released when the process ends, so this only drops
// the driver API's references (as a reset does) and syncs.
extern "C" CUresult cuDevicePrimaryCtxReset(CUdevice dev) {  // _v2
  VGPU_REQUIRE_INIT();
  if (const CUresult r = check_device(dev); r != CUDA_SUCCESS) return r;
  {
    std::lock_guard<std::mutex> lock(g_mutex);
    slot_of(handle_of(dev))->refs = 0;
  }
  return to_cu(vgpu::remote::cudaDeviceSynchronize());
}

extern "C" CUresult cuCtxGetFlags(unsigned int* flags) {
  VGPU_REQUIRE_INIT();
  if (!flags) return CUDA_ERROR_INVALID_VALUE;
  if (t_stack.empty()) return CUDA_ERROR_INVALID_CONTEXT;
  std::lock_guard<std::mutex> lock(g_mutex);
  *flags = g_primary_flags[slot_of(t_stack.back())->device];
  return CUDA_SUCCESS;
}

extern "C" CUresult cuCtxGetApiVersion(CUcontext ctx, unsigned int* version) {
  VGPU_REQUIRE_INIT();
  if (!version) return CUDA_ERROR_INVALID_VALUE;
  if (!ctx && t_stack.empty()) return CUDA_ERROR_INVALID_CONTEXT;
  if (ctx && !slot_of(ctx)) return CUDA_ERROR_INVALID_CONTEXT;
  *version = 13000;  // contexts of this API generation (CUDA 13)
  return CUDA_SUCCESS;
}
