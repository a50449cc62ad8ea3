// The cuda executor: remoted calls run on the host's real GPUs through the
// driver API. Built as a module (libvgpu-executor-cuda.so) that the mediator
// dlopen()s, so that only this file's binary needs NVIDIA's driver.
#include <cuda.h>

#include <exception>
#include <memory>
#include <string>
#include <type_traits>

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include "actors/executor/cuda/cuda_errors.h"
#include "actors/executor/cuda/cuda_executor.h"
#include "actors/executor/cuda/cuda_session.h"
#include "actors/executor/executor.h"

namespace vgpu::host::cuda {

namespace {

// Sessions run on device 0 until the guest's current device selects the
// context (ctx.device); calls that name a device check it against the count.
constexpr int kSessionDevice = 0;

class cuda_executor final : public executor {
 public:
  explicit cuda_executor(std::shared_ptr<shared_state> state) : state_(std::move(state)) {}

  const char* kind() const override { return "cuda"; }

  std::string describe() const override {
    std::string gpus;
    for (const gpu_info& g : state_->gpus) {
      if (!gpus.empty()) gpus += "; ";
      gpus += fmt::format("{} (sm_{}{}, {:.1f} GiB)", g.name, g.major, g.minor,
                          static_cast<double>(g.total_bytes) / double(1ull << 30));
    }
    return fmt::format("cuda executor: {} GPU(s): {}, driver {}", state_->device_count(), gpus,
                       state_->driver_version);
  }

  bool is_gpu() const override { return true; }
  int device_count() const override { return state_->device_count(); }

  std::unique_ptr<api_handler> open_session(const session_info& info, std::string* why) override {
    return cuda_session::open(state_, info, kSessionDevice, why);
  }

  uint64_t bytes_in_use() const override { return state_->used.load(std::memory_order_relaxed); }

  // Registered PORTABLE, so every session's context (one per guest process)
  // sees the region as pinned; a primary context is made current only for the
  // registration call itself.
  std::shared_ptr<void> pin_region(uint8_t* base, uint64_t bytes, std::string* why) override {
    CUdevice dev = 0;
    CUcontext primary = nullptr;
    CUresult r = cuDeviceGet(&dev, kSessionDevice);
    if (r == CUDA_SUCCESS) r = cuDevicePrimaryCtxRetain(&primary, dev);
    if (r != CUDA_SUCCESS) {
      *why = "cuDevicePrimaryCtxRetain: " + error_text(r);
      return nullptr;
    }
    CUcontext previous = nullptr;
    cuCtxGetCurrent(&previous);
    cuCtxSetCurrent(primary);
    r = cuMemHostRegister(base, bytes, CU_MEMHOSTREGISTER_PORTABLE);
    cuCtxSetCurrent(previous);
    if (r != CUDA_SUCCESS) {
      cuDevicePrimaryCtxRelease(dev);
      *why = "cuMemHostRegister: " + error_text(r);
      return nullptr;
    }
    spdlog::info("[cuda-executor] shared region of {} MiB pinned for DMA", bytes >> 20);
    return std::shared_ptr<void>(base, [primary, dev](void* p) {
      CUcontext prev = nullptr;
      cuCtxGetCurrent(&prev);
      cuCtxSetCurrent(primary);
      if (const CUresult u = cuMemHostUnregister(p); u != CUDA_SUCCESS)
        spdlog::warn("[cuda-executor] cuMemHostUnregister failed: {}", error_name(u));
      cuCtxSetCurrent(prev);
      cuDevicePrimaryCtxRelease(dev);
    });
  }

 private:
  std::shared_ptr<shared_state> state_;
};

// Starts the driver and describes its GPUs; nullptr and `why` when there is
// no usable GPU.
std::unique_ptr<executor> make_cuda_executor(std::string* why) {
  const auto fail = [why](const std::string& text) {
    if (why != nullptr) *why = text;
    return nullptr;
  };
  if (const CUresult r = cuInit(0); r != CUDA_SUCCESS) {
    return fail("cuInit failed: " + error_text(r));
  }
  int count = 0;
  if (const CUresult r = cuDeviceGetCount(&count); r != CUDA_SUCCESS) {
    return fail("cuDeviceGetCount failed: " + error_text(r));
  }
  if (count <= 0) return fail("no NVIDIA GPU: the driver reports 0 devices");

  auto state = std::make_shared<shared_state>();
  if (const CUresult r = cuDriverGetVersion(&state->driver_version); r != CUDA_SUCCESS) {
    return fail("cuDriverGetVersion failed: " + error_text(r));
  }
  for (int i = 0; i < count; ++i) {
    CUdevice dev = 0;
    gpu_info g;
    char name[256] = {};
    size_t total = 0;
    CUresult r = cuDeviceGet(&dev, i);
    if (r == CUDA_SUCCESS) r = cuDeviceGetName(name, sizeof name - 1, dev);
    if (r == CUDA_SUCCESS) r = cuDeviceTotalMem(&total, dev);
    if (r == CUDA_SUCCESS) {
      r = cuDeviceGetAttribute(&g.major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev);
    }
    if (r == CUDA_SUCCESS) {
      r = cuDeviceGetAttribute(&g.minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev);
    }
    if (r != CUDA_SUCCESS) return fail(fmt::format("GPU {}: {}", i, error_text(r)));
    g.name = name;
    g.total_bytes = total;
    state->gpus.push_back(std::move(g));
  }
  return std::make_unique<cuda_executor>(std::move(state));
}

}  // namespace
}  // namespace vgpu::host::cuda

// The module's one export (kCudaExecutorFactory). No exception crosses it:
// the loader expects nullptr plus a reason.
extern "C" __attribute__((visibility("default"))) vgpu::host::executor* vgpu_make_cuda_executor(
    std::string* why) {
  try {
    return vgpu::host::cuda::make_cuda_executor(why).release();
  } catch (const std::exception& e) {
    if (why != nullptr) *why = std::string("cuda executor: ") + e.what();
    return nullptr;
  }
}

static_assert(std::is_same_v<decltype(&vgpu_make_cuda_executor),
                             vgpu::host::cuda_executor_factory>,
              "the export must match what load_cuda_executor looks up");
