// Decoding a copied-out request and calling the executor session's handler.
// The table itself is generated (host_dispatch.cpp).
#pragma once

#include <cstdint>

#include <driver_types.h>

#include "actors/executor/call_context.h"
#include "host_handler.h"
#include "protocol/message.h"

namespace vgpu::host {

// The largest reply struct of any call (cudaDeviceProp is the largest today).
inline constexpr uint32_t kMaxReplyBytes = 4096;

// The channel's data area as the host sees it: its base in the host mapping
// and the size the host chose (never the size a guest wrote anywhere).
class data_area {
 public:
  data_area(uint8_t* base, uint64_t size) : base_(base), size_(size) {}
  bool resolve_const(const protocol::data_ref& r, const_bytes* out) const {
    if (!fits(r)) return false;
    *out = const_bytes{base_ + r.offset, r.length};
    return true;
  }
  bool resolve_mut(const protocol::data_ref& r, mut_bytes* out) const {
    if (!fits(r)) return false;
    *out = mut_bytes{base_ + r.offset, r.length};
    return true;
  }

 private:
  bool fits(const protocol::data_ref& r) const {
    return r.offset <= size_ && r.length <= size_ - r.offset;
  }
  uint8_t* base_;
  uint64_t size_;
};

// Runs one request. `args` holds m.arg_len bytes already copied out of the
// ring; the reply struct is written to `reply` (kMaxReplyBytes long).
cudaError_t dispatch(api_handler& h, call_context& ctx, const protocol::msg_header& m,
                     const uint8_t* args, const data_area& data, uint8_t* reply,
                     uint32_t* reply_len);

}  // namespace vgpu::host
