// Copies between any two kinds of memory (used by the symbol functions too).
#pragma once

#include <cstddef>
#include <cstdint>

#include <driver_types.h>

namespace vgpu::shim {

inline constexpr uint32_t kAsync = 1;  // flags bit 0 of the copy calls

cudaError_t copy(void* dst, const void* src, size_t count, cudaMemcpyKind kind, cudaStream_t stream,
                 uint32_t flags);

}  // namespace vgpu::shim
