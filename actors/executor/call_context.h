// What a handler knows about the call it is serving, besides its arguments.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <driver_types.h>

namespace vgpu::host {

// A reply a handler cannot give yet because a stream has not reached the
// point the guest waits for (cudaStreamSynchronize and friends). The worker
// calls it until it returns a status, serving other sessions meanwhile, and
// replies then: a GPU worker never blocks its thread on the GPU.
using deferred_reply = std::function<std::optional<cudaError_t>()>;

// Lets an executor tell the guest that a stream reached a host function
// (cudaLaunchHostFunc), from whatever thread the stream's callback runs on.
class guest_notifier {
 public:
  virtual ~guest_notifier() = default;
  // Posts `token` on the channel's notify ring. Returns its place in the
  // ring's order (1, 2, ...), or 0 when the guest is gone.
  virtual uint64_t post(uint64_t token) = 0;
  // Blocks until the guest has run every notification up to `place` (the
  // guest runs them in ring order and counts them), or is gone (false).
  // Never called on a worker thread: the stream's callback thread waits.
  virtual bool wait_done(uint64_t place) = 0;
};

struct call_context {
  std::string vm_id;   // operator's name of the VM ("local" for local processes)
  uint64_t session_id = 0;
  int32_t device = 0;  // the guest thread's current device (from the message header)
  uint64_t seq = 0;
  // A handler that must wait sets this and returns cudaSuccess.
  deferred_reply defer;
  // The channel's notifier (kept alive by whoever holds the shared_ptr).
  std::shared_ptr<guest_notifier> notifier;
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
