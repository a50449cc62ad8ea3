// What a handler knows about the call it is serving, besides its arguments.
#pragma once

#include <cstdint>
#include <string>

namespace vgpu::host {

struct call_context {
  std::string vm_id;   // operator's name of the VM ("local" for local processes)
  uint64_t session_id = 0;
  int32_t device = 0;  // the guest thread's current device (from the message header)
  uint64_t seq = 0;
};

// A bounds-checked span of the channel data area.
struct const_bytes {
  const uint8_t* data = nullptr;
  uint64_t size = 0;
};
struct mut_bytes {
  uint8_t* data = nullptr;
  uint64_t size = 0;
};

}  // namespace vgpu::host
