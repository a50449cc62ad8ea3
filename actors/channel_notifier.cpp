#include "actors/channel_notifier.h"

#include <time.h>
#include <unistd.h>

#include <algorithm>

namespace vgpu {

namespace {
void pause_for(long ns) {
  timespec ts{0, ns};
  nanosleep(&ts, nullptr);
}
}  // namespace

channel_notifier::channel_notifier(std::shared_ptr<stub::shm_region> region, uint32_t index, int wake_fd)
    : region_(std::move(region)) {
  const auto& layout = region_->layout();
  const auto v = protocol::channel_at(layout, index);
  ctl_ = reinterpret_cast<protocol::channel_ctl*>(region_->base() + v.ctl_offset);
  ring_ = protocol::ring(&ctl_->notify, region_->base() + v.notify_ring_offset, layout.ring_bytes);
  if (wake_fd >= 0) wake_.reset(dup(wake_fd));
}

uint64_t channel_notifier::post(uint64_t token) {
  std::lock_guard<std::mutex> lock(mutex_);
  if (gone_.load()) return 0;
  long backoff = 10000;
  while (!ring_.try_write(&token, sizeof token, nullptr, 0)) {
    // Full: the guest has not caught up. Corrupt: the guest broke its ring.
    if (ring_.corrupt() || gone_.load()) return 0;
    pause_for(backoff);
    backoff = std::min(backoff * 2, 1000000L);
  }
  std::atomic_thread_fence(std::memory_order_seq_cst);
  if (wake_ && ctl_->notify.consumer_sleeping.load(std::memory_order_relaxed) != 0) {
    const uint64_t one = 1;
    if (write(wake_.get(), &one, sizeof one) < 0) {
      // EAGAIN: a wake-up is pending already.
    }
  }
  return ++posted_;
}

bool channel_notifier::wait_done(uint64_t place) {
  long backoff = 2000;
  for (;;) {
    if (ctl_->notify_done.load(std::memory_order_acquire) >= place) return true;
    if (gone_.load()) return false;
    pause_for(backoff);
    backoff = std::min(backoff * 2, 500000L);
  }
}

void channel_notifier::mark_gone() {
  std::lock_guard<std::mutex> lock(mutex_);
  gone_.store(true);
}

}  // namespace vgpu
