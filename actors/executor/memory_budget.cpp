#include "actors/executor/memory_budget.h"

#include <algorithm>
#include <utility>

#include <spdlog/spdlog.h>

namespace vgpu::host {

memory_budget::memory_budget(std::string vm_id, uint64_t limit_bytes)
    : vm_id_(std::move(vm_id)), limit_(limit_bytes) {}

bool memory_budget::try_charge(uint64_t bytes, const char* call) {
  uint64_t used = used_.load(std::memory_order_relaxed);
  do {
    // used <= limit_ always holds while a limit is set, so limit_ - used cannot wrap.
    if (limit_ != 0 && bytes > limit_ - used) {
      if (!warned_.exchange(true, std::memory_order_relaxed)) {
        spdlog::warn("[vgpu] vm_id={}: memory limit of {} MiB reached: {} of {} bytes refused ({} bytes in use); "
                     "further refusals are logged at debug",
                     vm_id_, limit_ >> 20, call, bytes, used);
      } else {
        spdlog::debug("[vgpu] vm_id={}: memory limit of {} MiB: {} of {} bytes refused ({} bytes in use)", vm_id_,
                      limit_ >> 20, call, bytes, used);
      }
      return false;
    }
  } while (!used_.compare_exchange_weak(used, used + bytes, std::memory_order_relaxed));
  return true;
}

void memory_budget::refund(uint64_t bytes) { used_.fetch_sub(bytes, std::memory_order_relaxed); }

void memory_budget::view(uint64_t real_free, uint64_t real_total, uint64_t* free, uint64_t* total) const {
  if (limit_ == 0) {
    *free = real_free;
    *total = real_total;
    return;
  }
  const uint64_t used = std::min(used_.load(std::memory_order_relaxed), limit_);
  *total = std::min(limit_, real_total);
  *free = std::min(real_free, limit_ - used);
}

budget_share::budget_share(std::shared_ptr<memory_budget> budget)
    : budget_(budget ? std::move(budget) : std::make_shared<memory_budget>("unnamed", 0)) {}

}  // namespace vgpu::host
