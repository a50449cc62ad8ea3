// The data-plane state of one guest connection (a VM's QEMU or a local guest
// process): its link (socket, region, eventfds), the host view of each
// channel, and the executor session serving each channel. The session actor
// owns it; the GPU worker it is attached to is the only thread that touches
// the channels and handlers.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "actors/channel_notifier.h"
#include "actors/executor/call_context.h"
#include "actors/stats/session_stats.h"
#include "host_handler.h"
#include "protocol/message.h"
#include "stub/host_channel.h"
#include "stub/ivshmem_server.h"

namespace vgpu {

struct channel_state {
  channel_state(stub::host_channel c, std::shared_ptr<channel_notifier> n)
      : channel(c), notifier(std::move(n)) {}
  stub::host_channel channel;
  std::shared_ptr<channel_notifier> notifier;  // host functions reached by a stream
  std::unique_ptr<host::api_handler> handler;  // opened at the channel's first call
  std::vector<uint8_t> pending_reply;          // a reply that did not fit the response ring yet
  // A synchronising call whose reply waits for the GPU; no further request of
  // this channel is read until it is answered (replies stay in order).
  host::deferred_reply waiting;
  protocol::msg_header waiting_header{};
  // The first error of a posted call, reported by the next syncpoint call.
  cudaError_t deferred_error = cudaSuccess;
  // The claim generation the host has taken over (protocol: channel_slot).
  uint32_t seen_generation = 0;
  // Statistics (worker thread only): the waiting call's trace entry and when
  // it was taken off the ring; the device memory this channel's handler held
  // at its last call.
  size_t waiting_trace = 0;
  uint64_t waiting_received_ns = 0;
  uint64_t memory = 0;
};

struct host_session {
  uint64_t id = 0;
  std::string vm_id;
  std::unique_ptr<stub::peer_link> link;
  // The region pinned for DMA by the executor (released after the handlers).
  std::shared_ptr<void> pinned_region;
  std::vector<channel_state> channels;
  std::atomic<uint64_t> processed{0};
  std::atomic<uint64_t> errors{0};
  std::atomic<uint64_t> data_bytes{0};  // bulk bytes moved through the data area, either way
  // What vgpuctl and the metrics see of this session (never null once listed).
  std::shared_ptr<stats::session_stats> stats;
  uint64_t memory = 0;  // sum of the channels' memory (worker thread only)
  bool is_vm = false;  // a VM's QEMU (several guest processes), not one local process
  // Fair service on the worker (deficit round robin, worker_loop.cpp): the
  // session's weight and the service it may still take in this pass.
  uint32_t weight = 1;
  int64_t deficit = 0;
  // Cleared when the session ends, so its endpoint accepts the next connection.
  std::shared_ptr<std::atomic<bool>> endpoint_busy;
  // Called once, on the worker thread, after the worker has freed everything
  // the session owned on the executor. Says why the session ended.
  std::function<void(const std::string& reason)> on_end;
};

}  // namespace vgpu
