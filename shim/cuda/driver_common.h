// What the driver API files share: the runtime status a wire call answers,
// as the driver's CUresult.
#pragma once

#include <cuda.h>
#include <driver_types.h>

namespace vgpu::shim {

// The numbers agree for almost every code (CUDA keeps them aligned); the few
// that differ are mapped here.
CUresult to_cu(cudaError_t e);

// cuInit has run (the driver refuses everything else before it).
bool driver_initialised();

// The handle the driver API shows for `device`'s context (the session's one
// context, as that device's primary); driver_context.cpp.
CUcontext context_of_device(int device);

}  // namespace vgpu::shim

// Every entry point but cuInit, cuDriverGetVersion and the error texts starts with this.
#define VGPU_REQUIRE_INIT() \
  do {                      \
    if (!::vgpu::shim::driver_initialised()) return CUDA_ERROR_NOT_INITIALIZED; \
  } while (0)
