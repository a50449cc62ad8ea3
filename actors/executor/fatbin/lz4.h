// Decoder for the LZ4 block format (lz4's doc/lz4_Block_format.md), which
// nvcc uses for fatbin entries built with `-compress-mode=speed` (entry flag
// 0x2000). nvcc 13.0 compresses with zstd by default (flag 0x8000), which
// the reference executor does not decode.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace vgpu::fatbin {

// Decodes one block of `src_len` bytes that must expand to exactly
// `out_len` bytes. Every length and offset is checked: false on anything a
// correct encoder could not have produced from `out_len` bytes.
bool lz4_decode_block(const uint8_t* src, size_t src_len, size_t out_len,
                      std::vector<uint8_t>* out);

}  // namespace vgpu::fatbin
