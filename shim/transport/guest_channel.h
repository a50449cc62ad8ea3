// One claimed channel of a shared region, seen from a guest process: it posts
// requests into the request ring, rings the doorbell only when the host sleeps,
// and waits for responses by spinning briefly and then sleeping (on the wake
// eventfd of the local transport, or by backing off where there is none).
#pragma once

#include <cstdint>
#include <atomic>
#include <chrono>
#include <string>
#include <deque>

#include <driver_types.h>

#include "protocol/region_layout.h"
#include "protocol/ring.h"

namespace vgpu::shim {

// What a transport hands a channel: where the region is and how to signal.
struct channel_endpoints {
  uint8_t* region = nullptr;
  protocol::region_header header{};  // validated copy
  uint32_t index = 0;                // the claimed channel
  int doorbell_fd = -1;              // write 1 to ring the host (eventfd, local transport)
  volatile uint32_t* doorbell_mmio = nullptr;  // or: BAR0's Doorbell register (a VM)
  uint32_t generation = 0;           // of this process's claim on the channel
  int wake_fd = -1;                  // host signals it when we sleep; -1: poll with back-off
  int peer_fd = -1;                  // readable/hung up when the host is gone; -1: none
  int notify_wake_fd = -1;           // host signals it when the notify consumer sleeps; -1: poll
};

// The guest end of the channel's notify ring, for the one thread that
// consumes it (host functions reached by a stream).
struct notify_port {
  protocol::ring ring;                 // consumer side
  std::atomic<uint64_t>* done;         // the highest token whose function ran
  int wake_fd;
  int peer_fd;
};

class guest_channel {
 public:
  explicit guest_channel(const channel_endpoints& ep);

  // Waits until the host has taken over the claimed channel (freed what a
  // previous owner left, reset the rings); false and `why` after a timeout.
  bool attach(std::string* why);

  uint8_t* data() const { return data_; }
  uint64_t data_size() const { return ep_.header.data_bytes; }
  uint32_t max_args() const;
  // At most this many requests may await their responses (keeps the response
  // ring from filling while the guest is still posting).
  static constexpr int kMaxOutstanding = 8;

  // Queues one request: fixed arguments, then `tail` (may be empty). Unless
  // `flags` has kFlagPosted, *seq identifies the response to wait for.
  cudaError_t submit(uint16_t call_id, uint16_t flags, const void* args, uint32_t arg_len,
                     const void* tail, uint32_t tail_len, uint64_t data_len, uint64_t* seq);
  // Waits for the response to `seq`, the oldest request still awaiting one.
  // Copies at most rep_cap result bytes into rep; *rep_len (optional) gets how
  // many came. Returns the host's status, or cudaErrorDevicesUnavailable when
  // the host is gone.
  cudaError_t wait(uint64_t seq, void* rep, uint32_t rep_cap, uint32_t* rep_len = nullptr);
  // The notify ring's consumer end; call once, from the consuming thread's owner.
  notify_port make_notify_port() const;

  // Writes a raw record body (tests of hostile input only).
  bool write_raw(const void* body, uint32_t len);

  bool dead() const { return dead_; }
  int outstanding() const { return static_cast<int>(awaited_.size()); }

 private:
  void ring_doorbell(bool force = false, uint16_t op = 0, uint64_t seq = 0);
  bool host_gone();
  void idle_wait(bool for_response, int* round);

  channel_endpoints ep_;
  protocol::ring request_;
  protocol::ring response_;
  uint8_t* data_ = nullptr;
  uint64_t next_seq_ = 1;
  std::deque<uint64_t> awaited_;  // seqs of sent requests whose responses are due, in order
  bool dead_ = false;
  // Liveness of a host we cannot see through a socket (a VM): its heartbeat.
  uint64_t last_heartbeat_ = 0;
  std::chrono::steady_clock::time_point heartbeat_seen_{};
  int spin_ns_ = 20000;
};

}  // namespace vgpu::shim
