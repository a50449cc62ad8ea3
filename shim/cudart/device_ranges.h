// The device allocations this process holds, mirrored in the guest so that
// cudaMemcpyDefault can tell device pointers from host pointers without a
// round trip (CUDA's unified addressing does the same in the driver).
#pragma once

#include <cstdint>

namespace vgpu::shim {

void remember_device_range(uint64_t base, uint64_t size);
void forget_device_range(uint64_t base);
bool is_device_pointer(const void* p);
// Inside a buffer cudaMallocHost / cudaHostAlloc handed out (memory.cpp).
bool is_pinned_host_pointer(const void* p);
// Inside a range cudaHostRegister registered (host_register.cpp).
bool is_registered_host_pointer(const void* p);

}  // namespace vgpu::shim
