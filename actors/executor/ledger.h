// The allocations of one session: every device pointer a guest names is
// checked here before any executor touches memory, so a guest can only ever
// reach bytes it was given.
#pragma once

#include <cstdint>
#include <iterator>
#include <map>

namespace vgpu::host {

class allocation_ledger {
 public:
  void add(uint64_t base, uint64_t size) { allocs_[base] = size; bytes_ += size; }

  // Removes the allocation that starts exactly at `base`; false if there is none.
  bool remove(uint64_t base, uint64_t* size = nullptr) {
    auto it = allocs_.find(base);
    if (it == allocs_.end()) return false;
    if (size) *size = it->second;
    bytes_ -= it->second;
    allocs_.erase(it);
    return true;
  }

  // True when [ptr, ptr+len) lies inside one allocation (len 0 still needs a
  // valid ptr, as CUDA does for non-empty calls; callers skip empty copies).
  bool contains(uint64_t ptr, uint64_t len) const {
    auto it = allocs_.upper_bound(ptr);
    if (it == allocs_.begin()) return false;
    --it;
    const uint64_t off = ptr - it->first;
    return off < it->second && len <= it->second - off;
  }

  uint64_t bytes() const { return bytes_; }
  size_t count() const { return allocs_.size(); }
  const std::map<uint64_t, uint64_t>& all() const { return allocs_; }

 private:
  std::map<uint64_t, uint64_t> allocs_;  // base -> size
  uint64_t bytes_ = 0;
};

}  // namespace vgpu::host
