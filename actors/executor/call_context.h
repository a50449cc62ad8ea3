// What a handler knows about the call it is serving, besides its arguments.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

#include <driver_types.h>

namespace vgpu::host {

// A reply a handler cannot give yet because a stream has not reached the
// point the guest waits for (cudaStreamSynchronize and friends). The worker
// calls it until it returns a status, serving other sessions meanwhile, and
// replies then: a GPU worker never blocks its thread on the GPU.
using deferred_reply = std::function<std::optional<cudaError_t>()>;

struct call_context {
  std::string vm_id;   // operator's name of the VM ("local" for local processes)
  uint64_t session_id = 0;
  int32_t device = 0;  // the guest thread's current device (from the message header)
  uint64_t seq = 0;
  // A handler that must wait sets this and returns cudaSuccess.
  deferred_reply defer;
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
