// The device memory this process holds, mirrored in the guest so that
// cudaMemcpyDefault can tell device pointers from host pointers without a
// round trip (CUDA's unified addressing does the same in the driver). Kept in
// libcuda.so.1, so that memory the driver API makes (cuMemAlloc, VMM
// mappings, module variables) counts as much as the runtime's.
#pragma once

#include <cstdint>

namespace vgpu::shim {

void remember_device_range(uint64_t base, uint64_t size);
void forget_device_range(uint64_t base);
// Forgets every range that starts inside [base, base+size) (an unmap of
// several VMM mappings at once).
void forget_device_ranges_in(uint64_t base, uint64_t size);
bool is_device_pointer(const void* p);

}  // namespace vgpu::shim
