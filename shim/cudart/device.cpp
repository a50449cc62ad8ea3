// Device selection and versions: guest-local state, validated against the
// device count the host reports (asked once per process).
#include <atomic>

#include <cuda_runtime_api.h>

#include "guest_remote.h"
#include "shim/cudart/last_error.h"
#include "shim/transport/guest_call.h"

namespace {
constexpr int kRuntimeVersion = 13000;  // the runtime this shim stands in for

cudaError_t device_count(int* count) {
  static std::atomic<int> cached{-1};
  int c = cached.load(std::memory_order_acquire);
  if (c < 0) {
    const cudaError_t st = vgpu::remote::cudaGetDeviceCount(&c);
    if (st != cudaSuccess) return st;
    cached.store(c, std::memory_order_release);
  }
  *count = c;
  return cudaSuccess;
}
}  // namespace

extern "C" const char* vgpuShimInfo(void) {
  return "vgpu shim 0.1.0 (libcudart.so.13 stand-in, protocol 1.0)";
}

extern "C" cudaError_t cudaSetDevice(int device) {
  int count = 0;
  const cudaError_t st = device_count(&count);
  if (st != cudaSuccess) return vgpu::shim::finish(st);
  if (device < 0 || device >= count) return vgpu::shim::finish(cudaErrorInvalidDevice);
  vgpu::shim::set_thread_device(device);
  return cudaSuccess;
}

extern "C" cudaError_t cudaGetDevice(int* device) {
  if (!device) return vgpu::shim::finish(cudaErrorInvalidValue);
  *device = vgpu::shim::thread_device();
  return cudaSuccess;
}

extern "C" cudaError_t cudaRuntimeGetVersion(int* runtimeVersion) {
  if (!runtimeVersion) return vgpu::shim::finish(cudaErrorInvalidValue);
  *runtimeVersion = kRuntimeVersion;
  return cudaSuccess;
}

extern "C" struct cudaChannelFormatDesc cudaCreateChannelDesc(int x, int y, int z, int w,
                                                              enum cudaChannelFormatKind f) {
  cudaChannelFormatDesc d;
  d.x = x;
  d.y = y;
  d.z = z;
  d.w = w;
  d.f = f;
  return d;
}
