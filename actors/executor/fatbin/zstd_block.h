// zstd-compressed fatbin entries (nvcc 13 compresses with zstd by default),
// decoded with Debian's libzstd.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace vgpu::fatbin {

// Decodes one zstd frame of `size` bytes that must expand to exactly
// `expected` bytes into `out`; false for anything else (corrupt, short, long).
bool zstd_decode_frame(const uint8_t* data, size_t size, size_t expected, std::vector<uint8_t>* out);

}  // namespace vgpu::fatbin
