// What the reference executor needs from a cubin (the ELF image ptxas writes
// for one GPU architecture): its kernels with their parameter layouts and its
// module-scope variables. Used when a fatbin carries no PTX, as most
// libraries built for release do (PyTorch's ship only cubins).
//
// Learnt from nvcc 13.0 cubins for sm_75 ... sm_120, whole-program and -rdc:
//   kernels    STT_FUNC symbols with st_other bit 0x10 (the entry mark; device
//              functions lack it, and static kernels are STB_LOCAL), each
//              with a section .nv.info.<name> giving its parameters (nv_info.h);
//   variables  defined STT_OBJECT symbols (type 13 in -rdc objects) in
//              .nv.global or .nv.global.init (__device__, __managed__) or in
//              .nv.constant<bank> (__constant__), sized by st_size. The
//              per-kernel banks .nv.constant<N>.<kernel> hold parameters and
//              compiler constants, never variables.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "actors/executor/fatbin/module_info.h"

namespace vgpu::fatbin {

// Fills `out` from the `size` bytes of a cubin. False and a one-line reason
// in `why` for anything that is not a well-formed cubin: every offset and
// size is checked, the bytes come from a guest.
bool parse_cubin(const uint8_t* data, size_t size, module_info* out, std::string* why);

}  // namespace vgpu::fatbin
