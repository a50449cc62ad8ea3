// The fatbin container: what nvcc embeds in a program (section .nv_fatbin)
// and what the `data` of the __fatBinC_Wrapper_t handed to
// __cudaRegisterFatBinary points at. The guest uploads these bytes; the
// reference executor reads the kernels and variables out of their PTX, or
// out of a cubin when there is no PTX.
//
// Layout (little-endian; learnt from nvcc 13.0 output, no NVIDIA header
// describes it):
//   header, 16 bytes: u32 magic 0xBA55ED50, u16 version 1, u16 header size,
//                     u64 size of the entries that follow the header
//   entries back to back, each a header of >= 64 bytes then its payload:
//     0x00 u16 kind (1 PTX, 2 ELF cubin)   0x02 u16 entry format version
//     0x04 u32 entry header size           0x08 u64 payload size (padded to 8)
//     0x10 u32 compressed size (0 = plain) 0x18 u16 minor, u16 major (PTX ISA
//     0x1c u32 arch (90 = sm_90/compute_90)     or cubin version)
//     0x28 u64 flags: 0x1 64-bit, 0x2 debug, 0x10 linux host,
//                     0x2000 LZ4-compressed, 0x8000 zstd-compressed
//     0x38 u64 uncompressed size (0 = plain)
//   Headers longer than 64 bytes carry the object name and ptxas options.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "actors/executor/fatbin/module_info.h"

namespace vgpu::fatbin {

inline constexpr uint32_t kFatbinMagic = 0xBA55ED50;

// Reads `size` bytes of a fatbin (bytes past the size its header gives are
// ignored). Picks one PTX entry — plain before LZ4-compressed, then the
// highest arch not above 90 — and scans it; without readable PTX, one cubin
// — sm_90, else the highest arch below, else the lowest above; plain before
// LZ4 — and reads it. False and a one-line reason in `why`, also saying how
// to rebuild when the entries are zstd-compressed. Every offset and size is
// checked: the bytes come from a guest.
bool parse_fatbin(const uint8_t* data, size_t size, module_info* out, std::string* why);

}  // namespace vgpu::fatbin
