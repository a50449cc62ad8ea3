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
