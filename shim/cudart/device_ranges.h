// Which guest pointers are device memory (shim/transport/device_ranges.h, in
// libcuda.so.1) and which host memory the runtime pinned or registered.
#pragma once

#include "shim/transport/device_ranges.h"

namespace vgpu::shim {

// Inside a buffer cudaMallocHost / cudaHostAlloc handed out (memory.cpp).
bool is_pinned_host_pointer(const void* p);
// Inside a range cudaHostRegister registered (host_register.cpp).
bool is_registered_host_pointer(const void* p);

}  // namespace vgpu::shim
