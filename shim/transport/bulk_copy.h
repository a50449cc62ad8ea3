// Bulk copies through the channel's data area (see bulk_copy.cpp).
#pragma once

#include <cstdint>

#include <driver_types.h>

namespace vgpu::shim {

// `stream` is a guest stream handle (0 = the legacy default stream); `flags`
// bit 0 asks for the stream-ordered (asynchronous) variant.
cudaError_t copy_to_device(uint64_t dst, const uint8_t* src, uint64_t count, uint64_t stream, uint32_t flags);
cudaError_t copy_from_device(uint8_t* dst, uint64_t src, uint64_t count, uint64_t stream, uint32_t flags);

}  // namespace vgpu::shim
