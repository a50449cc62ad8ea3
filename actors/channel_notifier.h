// The host end of a channel's notify ring: tells the guest process that a
// stream reached one of its host functions and waits until the guest ran it.
// Called from the driver's callback threads, so it keeps the region mapped
// and its wake-up eventfd open by itself, and releases every waiter when the
// session ends.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>

#include "actors/executor/call_context.h"
#include "protocol/ring.h"
#include "stub/shm_region.h"
#include "stub/unique_fd.h"

namespace vgpu {

class channel_notifier final : public host::guest_notifier {
 public:
  channel_notifier(std::shared_ptr<stub::shm_region> region, uint32_t index, int wake_fd);

  uint64_t post(uint64_t token) override;
  bool wait_done(uint64_t place) override;
  // The session ended: post and wait_done return false from now on.
  void mark_gone();

 private:
  std::shared_ptr<stub::shm_region> region_;
  protocol::channel_ctl* ctl_;
  protocol::ring ring_;
  stub::unique_fd wake_;  // a dup of the guest's vector-1 eventfd (-1 for VMs)
  std::mutex mutex_;      // one producer at a time on the ring
  std::atomic<bool> gone_{false};
  uint64_t posted_ = 0;  // notifications written so far (under mutex_)
};

}  // namespace vgpu
