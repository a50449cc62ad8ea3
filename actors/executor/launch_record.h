// How the reference executor serializes one recorded kernel launch for
// vgpuDebugLaunchRecord (tests check marshalling byte for byte with it):
//
//   launch_record_header, then name_len bytes of the kernel's mangled name,
//   then param_len bytes of the parameter block exactly as it arrived.
#pragma once

#include <cstdint>

namespace vgpu::host {

struct launch_record_header {
  uint32_t grid[3];
  uint32_t block[3];
  uint32_t cluster[3];
  uint32_t shared_mem;
  uint32_t launch_flags;
  uint32_t name_len;
  uint32_t param_len;
  uint32_t reserved;
  uint64_t stream;
};

}  // namespace vgpu::host
