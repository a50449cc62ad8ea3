#include "shim/transport/guest_channel.h"

#include <poll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <string>

#include "api_ids.h"
#include "protocol/message.h"
#include "shim/transport/guest_call.h"
#include "shim/transport/guest_log.h"

namespace vgpu::shim {

namespace {
using clock_type = std::chrono::steady_clock;

inline void cpu_relax() { __builtin_ia32_pause(); }

int spin_ns_from_env() {
  const char* v = std::getenv("VGPU_SPIN_US");
  return v ? std::atoi(v) * 1000 : 20000;
}

const char* name_of(uint16_t id) {
  const char* n = protocol::call_name(id);
  return n ? n : "?";
}
}  // namespace

guest_channel::guest_channel(const channel_endpoints& ep) : ep_(ep) {
  data_ = ep.region + protocol::channel_at(ep.header, ep.index).data_offset;
  spin_ns_ = spin_ns_from_env();
  heartbeat_seen_ = clock_type::now();
}

bool guest_channel::attach(std::string* why) {
  const auto view = protocol::channel_at(ep_.header, ep_.index);
  auto* slot = reinterpret_cast<protocol::channel_slot*>(ep_.region + ep_.header.channel_table_offset) + ep_.index;
  const auto deadline = clock_type::now() + std::chrono::seconds(10);
  long backoff_ns = 2000;
  // The host sees the new generation on its next pass; a sleeping host needs the doorbell.
  while (slot->ready_generation.load(std::memory_order_acquire) != ep_.generation) {
    if (clock_type::now() > deadline || host_gone()) {
      *why = "the vgpu mediator did not take over channel " + std::to_string(ep_.index) + " (is it serving this device?)";
      return false;
    }
    ring_doorbell(true);
    timespec ts{0, backoff_ns};
    nanosleep(&ts, nullptr);
    backoff_ns = std::min(backoff_ns * 2, 2000000L);
  }
  auto* ctl = reinterpret_cast<protocol::channel_ctl*>(ep_.region + view.ctl_offset);
  request_ = protocol::ring(&ctl->request, ep_.region + view.request_ring_offset, ep_.header.ring_bytes);
  response_ = protocol::ring(&ctl->response, ep_.region + view.response_ring_offset, ep_.header.ring_bytes);
  return true;
}

uint32_t guest_channel::max_args() const {
  return request_.max_body() - static_cast<uint32_t>(sizeof(protocol::msg_header));
}

void guest_channel::ring_doorbell(bool force, uint16_t op, uint64_t seq) {
  // Pairs with the host's fence between setting consumer_sleeping and its last
  // look at the ring: either it sees our request or we see it sleeping.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (!force && request_.indices()->consumer_sleeping.load(std::memory_order_relaxed) == 0) return;
  if (ep_.doorbell_mmio) {
    VGPU_GLOG(debug, "[cuda-transport] RINGING DOORBELL: MMIO write to VGPU-STUB (op=0x%04x, seq=%llu)", op,
              static_cast<unsigned long long>(seq));
    *ep_.doorbell_mmio = 0;  // (peer 0 << 16) | vector 0: the mediator's doorbell eventfd
    return;
  }
  VGPU_GLOG(debug, "[cuda-transport] RINGING DOORBELL: eventfd write to VGPU-STUB (op=0x%04x, seq=%llu)", op,
            static_cast<unsigned long long>(seq));
  const uint64_t one = 1;
  if (write(ep_.doorbell_fd, &one, sizeof one) < 0) {
    // EAGAIN means the counter is saturated: the host has a wake-up pending anyway.
  }
}

bool guest_channel::host_gone() {
  if (ep_.peer_fd >= 0) {
    pollfd p{ep_.peer_fd, POLLIN | POLLRDHUP, 0};
    if (poll(&p, 1, 0) <= 0) return false;
    if (p.revents & (POLLHUP | POLLRDHUP | POLLERR)) return true;
    char c;
    return recv(ep_.peer_fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
  }
  // No socket to watch (a VM): the mediator bumps a heartbeat while it serves
  // the region; one that stood still for seconds means the mediator is gone.
  const auto* live = reinterpret_cast<const protocol::region_live*>(ep_.region + protocol::kLiveOffset);
  const uint64_t beat = live->host_heartbeat.load(std::memory_order_acquire);
  const auto now = clock_type::now();
  if (beat != last_heartbeat_) {
    last_heartbeat_ = beat;
    heartbeat_seen_ = now;
    return false;
  }
  return now - heartbeat_seen_ > std::chrono::seconds(3);
}

// Called after the spin phase found nothing: sleeps until something may have
// changed. With a wake eventfd the host signals us when consumer_sleeping is
// set; without one (a VM) we back off from 10 us up to 1 ms.
void guest_channel::idle_wait(bool for_response, int* round) {
  auto& flag = (for_response ? response_.indices() : request_.indices())->consumer_sleeping;
  if (ep_.wake_fd >= 0 && for_response) {
    flag.store(1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (response_.empty_for_consumer()) {
      pollfd p[2] = {{ep_.wake_fd, POLLIN, 0}, {ep_.peer_fd, POLLRDHUP, 0}};
      poll(p, ep_.peer_fd >= 0 ? 2 : 1, 50);
      if (p[0].revents & POLLIN) {
        uint64_t v;
        if (read(ep_.wake_fd, &v, sizeof v) < 0) {
        }
      }
    }
    flag.store(0, std::memory_order_relaxed);
  } else {
    const long ns = std::min(10000L << std::min(*round, 7), 1000000L);
    timespec ts{0, ns};
    nanosleep(&ts, nullptr);
  }
  ++*round;
}

cudaError_t guest_channel::submit(uint16_t call_id, uint16_t flags, const void* args,
                                  uint32_t arg_len, const void* tail, uint32_t tail_len,
                                  uint64_t data_len, uint64_t* seq) {
  if (dead_) return cudaErrorDevicesUnavailable;
  if (arg_len > max_args() || tail_len > max_args() - arg_len) return cudaErrorInvalidValue;
  protocol::msg_header h{};
  h.call_id = call_id;
  h.flags = flags;
  h.arg_len = arg_len + tail_len;
  h.seq = next_seq_;
  h.data_len = data_len;
  h.device = thread_device();
  VGPU_GLOG(debug, "[cuda-transport] SENDING to VGPU-STUB: call_id=0x%04x (%s) seq=%llu args=%u data_len=%llu",
            call_id, name_of(call_id), static_cast<unsigned long long>(h.seq), arg_len,
            static_cast<unsigned long long>(data_len));
  int round = 0;
  auto start = clock_type::now();
  while (!request_.try_write(&h, sizeof h, args, arg_len, tail, tail_len)) {
    if (request_.corrupt() || host_gone()) {
      dead_ = true;
      return cudaErrorDevicesUnavailable;
    }
    ring_doorbell();  // the host may be asleep with our earlier requests unread
    if (clock_type::now() - start > std::chrono::nanoseconds(spin_ns_)) idle_wait(false, &round);
    else cpu_relax();
  }
  ring_doorbell(false, call_id, h.seq);
  *seq = next_seq_++;
  if (!(flags & protocol::kFlagPosted)) awaited_.push_back(*seq);
  return cudaSuccess;
}

cudaError_t guest_channel::wait(uint64_t seq, void* rep, uint32_t rep_cap, uint32_t* rep_len) {
  if (dead_) return cudaErrorDevicesUnavailable;
  if (awaited_.empty() || seq != awaited_.front()) return cudaErrorInvalidValue;  // responses come in order
  alignas(8) uint8_t buf[8192];  // replies are small (at most a few KiB); bulk data uses the data area
  uint32_t len = 0;
  int round = 0;
  auto start = clock_type::now();
  uint32_t checks = 0;
  for (;;) {
    const auto st = response_.try_read(buf, sizeof buf, &len);
    if (st == protocol::read_status::ok) break;
    if (st == protocol::read_status::corrupt) {
      dead_ = true;
      VGPU_GLOG(error, "[cuda-transport] response ring corrupt: giving up on the vgpu device");
      return cudaErrorDevicesUnavailable;
    }
    if ((++checks & 1023) == 0 && host_gone()) {
      dead_ = true;
      VGPU_GLOG(error, "[cuda-transport] the vgpu mediator went away (call seq=%llu unanswered)",
                static_cast<unsigned long long>(seq));
      return cudaErrorDevicesUnavailable;
    }
    if (clock_type::now() - start > std::chrono::nanoseconds(spin_ns_)) {
      idle_wait(true, &round);
      if (round % 20 == 0 && host_gone()) checks = 1023;  // check on the next turn
    } else {
      cpu_relax();
    }
  }
  protocol::msg_header h;
  if (len < sizeof h) {
    dead_ = true;
    return cudaErrorDevicesUnavailable;
  }
  std::memcpy(&h, buf, sizeof h);
  if (h.seq != seq || h.arg_len != len - sizeof h) {
    dead_ = true;
    VGPU_GLOG(error, "[cuda-transport] response out of order (got seq=%llu, want %llu)",
              static_cast<unsigned long long>(h.seq), static_cast<unsigned long long>(seq));
    return cudaErrorDevicesUnavailable;
  }
  awaited_.pop_front();
  VGPU_GLOG(debug, "[cuda-transport] RECEIVED from VGPU-STUB: call_id=0x%04x seq=%llu status=%s(%d)",
            h.call_id, static_cast<unsigned long long>(h.seq), h.status == 0 ? "DONE" : "ERROR",
            h.status);
  const uint32_t n = h.arg_len < rep_cap ? h.arg_len : rep_cap;
  if (n) std::memcpy(rep, buf + sizeof h, n);
  if (rep_len) *rep_len = h.arg_len;
  return static_cast<cudaError_t>(h.status);
}

notify_port guest_channel::make_notify_port() const {
  const auto view = protocol::channel_at(ep_.header, ep_.index);
  auto* ctl = reinterpret_cast<protocol::channel_ctl*>(ep_.region + view.ctl_offset);
  return notify_port{protocol::ring(&ctl->notify, ep_.region + view.notify_ring_offset, ep_.header.ring_bytes),
                     &ctl->notify_done, ep_.notify_wake_fd, ep_.peer_fd};
}

bool guest_channel::write_raw(const void* body, uint32_t len) {
  if (dead_ || !request_.try_write(body, len, nullptr, 0)) return false;
  ring_doorbell();
  return true;
}

}  // namespace vgpu::shim
