// The answer of every exported name vgpu does not implement yet.
#pragma once

namespace vgpu::shim {

// Logs `name` once per process, records cudaErrorNotSupported as the last
// error and returns it (as int: these stubs do not claim CUDA's signatures).
int not_supported(const char* name);

// A non-null handle for internals that must return one (fat binary
// registration) so that a program's static constructors survive.
void** unsupported_handle();

}  // namespace vgpu::shim
