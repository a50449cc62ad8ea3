// The GPU memory budget of one VM (or of the local socket's processes, which
// count as one VM, "local"): every session of the VM holds the same budget, so
// all its guest processes share one limit. Every real allocation a session
// makes for its guest (cuMemAlloc, cuMemCreate, cuMemAllocAsync, cuBLAS
// pointer-array scratch) takes its bytes here first and gives them back when
// it is freed; what the guest is told (cudaMemGetInfo, cuMemGetInfo, NVML)
// comes from view(). Shared across worker threads: lock-free counters.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

namespace vgpu::host {

class memory_budget {
 public:
  // limit_bytes 0: no limit (the bytes are still counted, for view() and logs).
  memory_budget(std::string vm_id, uint64_t limit_bytes);
  memory_budget(const memory_budget&) = delete;
  memory_budget& operator=(const memory_budget&) = delete;

  const std::string& vm_id() const { return vm_id_; }
  uint64_t limit() const { return limit_; }
  uint64_t used() const { return used_.load(std::memory_order_relaxed); }

  // Takes `bytes` for `call`; false when that would pass the limit. The first
  // refusal of this VM is logged at warn (the VM, the limit, the call), later
  // ones at debug: a program probing for the largest allocation must not
  // flood the log.
  bool try_charge(uint64_t bytes, const char* call);
  void refund(uint64_t bytes);

  // The VM's view of a device whose driver reports real_free/real_total:
  // total = min(limit, real total), free = min(real free, limit - used).
  void view(uint64_t real_free, uint64_t real_total, uint64_t* free, uint64_t* total) const;

 private:
  const std::string vm_id_;
  const uint64_t limit_;
  std::atomic<uint64_t> used_{0};
  std::atomic<bool> warned_{false};
};

// One session's part of its VM's budget: what the session holds is given
// back when the session ends, whatever it forgot to free (a crashed guest
// frees nothing). Used by the session's worker thread only.
class budget_share {
 public:
  // nullptr: a budget of its own, without a limit (sessions opened directly, in unit tests).
  explicit budget_share(std::shared_ptr<memory_budget> budget);
  ~budget_share() { budget_->refund(held_); }
  budget_share(const budget_share&) = delete;
  budget_share& operator=(const budget_share&) = delete;

  bool try_charge(uint64_t bytes, const char* call) {
    if (!budget_->try_charge(bytes, call)) return false;
    held_ += bytes;
    return true;
  }
  void refund(uint64_t bytes) {
    if (bytes > held_) bytes = held_;  // never more than this session took
    held_ -= bytes;
    budget_->refund(bytes);
  }
  uint64_t held() const { return held_; }
  const memory_budget& budget() const { return *budget_; }
  void view(uint64_t real_free, uint64_t real_total, uint64_t* free, uint64_t* total) const {
    budget_->view(real_free, real_total, free, total);
  }

 private:
  std::shared_ptr<memory_budget> budget_;
  uint64_t held_ = 0;
};

// Bytes taken from a session's share, given back when this goes out of scope
// unless keep() hands them to the allocation (whose free refunds them): an
// allocation that fails after the charge leaks nothing.
class memory_charge {
 public:
  memory_charge() = default;
  // Tries to take `bytes` (the share outlives this); check ok().
  memory_charge(budget_share& share, uint64_t bytes, const char* call)
      : share_(share.try_charge(bytes, call) ? &share : nullptr), bytes_(bytes) {}
  ~memory_charge() { reset(); }
  memory_charge(memory_charge&& o) noexcept : share_(o.share_), bytes_(o.bytes_) { o.share_ = nullptr; }
  memory_charge& operator=(memory_charge&& o) noexcept {
    if (this != &o) {
      reset();
      share_ = o.share_;
      bytes_ = o.bytes_;
      o.share_ = nullptr;
    }
    return *this;
  }
  memory_charge(const memory_charge&) = delete;
  memory_charge& operator=(const memory_charge&) = delete;

  bool ok() const { return share_ != nullptr; }
  // The allocation now owns the bytes: its free refunds them.
  void keep() { share_ = nullptr; }
  void reset() {
    if (share_ != nullptr) share_->refund(bytes_);
    share_ = nullptr;
  }

 private:
  budget_share* share_ = nullptr;
  uint64_t bytes_ = 0;
};

}  // namespace vgpu::host
