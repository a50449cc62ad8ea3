// A kernel's parameter layout from its cubin section `.nv.info.<kernel>`:
// the attributes ptxas writes for the driver (what cuFuncGetParamInfo
// reports). Learnt from nvcc 13.0 output for sm_75 ... sm_120 (cubins of many
// signatures, read byte by byte); no NVIDIA header describes it.
//
// The section is a sequence of records, each starting on a 4-byte boundary:
//   u8 format, u8 attribute, then by format:
//     1 (no value), 2 (u8 value + pad), 3 (u16 value): 4 bytes in all
//     4 (sized):  u16 size, then `size` bytes
// The attributes read here (all others are skipped by their size):
//   0x17 parameter (format 4, 12 bytes): u32 0, u16 ordinal, u16 offset,
//        u32 flags with the size in bits 18..31
//   0x45 parameter, long form (format 4, 12 bytes): u32 0, u16 ordinal,
//        u16 offset, u32 size; ptxas writes it instead of 0x17 for kernels
//        with large parameter blocks
//   0x19 parameter block size (format 3): u16 bytes
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "actors/executor/fatbin/module_info.h"

namespace vgpu::fatbin {

// Fills k->params and k->param_bytes from the `size` bytes of a kernel's
// .nv.info section. False and a reason when a record runs past the section,
// has an unknown format, or the parameters do not form a layout a compiler
// could have written (ordinals 0..n-1 once each, in ascending,
// non-overlapping order, within kMaxParamBytes, agreeing with the block size).
bool read_kernel_params(const uint8_t* data, size_t size, kernel_info* k, std::string* why);

}  // namespace vgpu::fatbin
