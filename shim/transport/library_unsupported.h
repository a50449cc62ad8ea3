// The answer of every name a remoted library (cuBLAS, ...) exports that vgpu
// does not implement yet; used by the generated <lib>_unsupported.cpp.
#pragma once

namespace vgpu::shim {

// Logs `name` once per process and returns `status` (the library's
// NOT_SUPPORTED value, as int: those stubs do not claim NVIDIA's signatures).
int library_not_supported(const char* library, const char* name, int status);

}  // namespace vgpu::shim
