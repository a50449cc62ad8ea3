// One channel of a region, seen from the host: it consumes the request ring
// (copying each record out before anything parses it), produces the response
// ring, and wakes a guest that went to sleep waiting for a response.
#pragma once

#include <cstdint>

#include "protocol/region_layout.h"
#include "protocol/ring.h"

namespace vgpu::stub {

class host_channel {
 public:
  // `layout` is the host's own copy of the region layout.
  host_channel(uint8_t* region, const protocol::region_header& layout, uint32_t index, int wake_fd);

  protocol::read_status read_request(void* out, uint32_t cap, uint32_t* len) {
    return request_.try_read(out, cap, len);
  }
  bool has_request() const { return request_.empty_for_consumer() == false; }
  // False when the response ring is full now (the guest is behind) or corrupt.
  bool write_response(const void* a, uint32_t na, const void* b, uint32_t nb) {
    return response_.try_write(a, na, b, nb);
  }
  bool corrupt() const { return request_.corrupt() || response_.corrupt(); }

  // A new guest process claimed the channel: zero every ring index (request,
  // response, notify) and the notify count, and start the host's rings afresh.
  void reset();
  // The claim word of this channel (guest-written: only compared).
  protocol::channel_slot* slot() const { return slot_; }

  // Tells guests that the host is about to block: they ring the doorbell.
  void set_sleeping(bool sleeping);
  // After writing responses: signal the guest if it sleeps.
  void wake_guest_if_sleeping();

  uint8_t* data() const { return data_; }
  uint64_t data_size() const { return data_size_; }
  uint32_t index() const { return index_; }

 private:
  protocol::channel_ctl* ctl_;
  protocol::channel_slot* slot_;
  uint8_t* request_buf_;
  uint8_t* response_buf_;
  uint64_t ring_bytes_;
  protocol::ring request_;
  protocol::ring response_;
  uint8_t* data_;
  uint64_t data_size_;
  uint32_t index_;
  int wake_fd_;
};

}  // namespace vgpu::stub
