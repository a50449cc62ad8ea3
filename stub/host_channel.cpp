#include "stub/host_channel.h"

#include <unistd.h>

#include <atomic>

namespace vgpu::stub {

host_channel::host_channel(uint8_t* region, const protocol::region_header& layout, uint32_t index,
                           int wake_fd)
    : data_size_(layout.data_bytes), index_(index), wake_fd_(wake_fd) {
  const auto v = protocol::channel_at(layout, index);
  ctl_ = reinterpret_cast<protocol::channel_ctl*>(region + v.ctl_offset);
  slot_ = reinterpret_cast<protocol::channel_slot*>(region + layout.channel_table_offset) + index;
  request_buf_ = region + v.request_ring_offset;
  response_buf_ = region + v.response_ring_offset;
  ring_bytes_ = layout.ring_bytes;
  data_ = region + v.data_offset;
  reset();
}

void host_channel::reset() {
  for (protocol::ring_indices* r : {&ctl_->request, &ctl_->response, &ctl_->notify}) {
    r->head.store(0, std::memory_order_relaxed);
    r->tail.store(0, std::memory_order_relaxed);
    r->consumer_sleeping.store(0, std::memory_order_relaxed);
  }
  ctl_->notify_done.store(0, std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_release);
  request_ = protocol::ring(&ctl_->request, request_buf_, ring_bytes_);
  response_ = protocol::ring(&ctl_->response, response_buf_, ring_bytes_);
}

void host_channel::set_sleeping(bool sleeping) {
  request_.indices()->consumer_sleeping.store(sleeping ? 1 : 0, std::memory_order_relaxed);
}

void host_channel::wake_guest_if_sleeping() {
  if (wake_fd_ < 0) return;
  // Pairs with the guest's fence between setting its flag and its last look.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (response_.indices()->consumer_sleeping.load(std::memory_order_relaxed) == 0) return;
  const uint64_t one = 1;
  if (write(wake_fd_, &one, sizeof one) < 0) {
    // EAGAIN: the counter is saturated, the guest has a wake-up pending anyway.
  }
}

}  // namespace vgpu::stub
