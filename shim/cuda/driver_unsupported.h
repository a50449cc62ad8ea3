// The answer of every libcuda.so.1 name vgpu does not implement yet.
#pragma once

namespace vgpu::shim {

// Logs `name` once per process and returns CUDA_ERROR_NOT_SUPPORTED (as int:
// these stubs do not claim the driver's signatures).
int driver_not_supported(const char* name);

// True for an exported name whose entry point is such a stub: cuGetProcAddress
// does not hand those out (a caller that probes for a feature sees it absent,
// as it should, instead of a function that fails when called).
bool driver_name_unsupported(const char* name);

}  // namespace vgpu::shim
