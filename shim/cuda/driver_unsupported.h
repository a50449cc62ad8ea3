// The answer of every libcuda.so.1 name vgpu does not implement yet.
#pragma once

namespace vgpu::shim {

// Logs `name` once per process and returns CUDA_ERROR_NOT_SUPPORTED (as int:
// these stubs do not claim the driver's signatures).
int driver_not_supported(const char* name);

}  // namespace vgpu::shim
