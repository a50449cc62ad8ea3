// Wire value types beyond plain integers, shared by the generated structs of
// every remoted library.
#pragma once

#include <cstdint>
#include <type_traits>

namespace vgpu::protocol {

// A scalar passed by value as raw bytes (cuBLAS alpha/beta, a reduction's
// result): wide enough for a double complex. What the bytes mean follows the
// call (its data or compute type, or a device pointer in device pointer mode).
struct scalar16 {
  alignas(8) uint8_t bytes[16];
};
static_assert(sizeof(scalar16) == 16 && std::is_trivially_copyable_v<scalar16>);

}  // namespace vgpu::protocol
