// Maps the handle ids a guest sees (streams, events) to the host objects they
// stand for. Ids are issued here and never reused within a session, so a
// stale or forged id is rejected instead of reaching another object.
#pragma once

#include <cstdint>
#include <unordered_map>
#include <utility>

namespace vgpu::host {

// Stream ids 0, 1 and 2 are CUDA's legacy default stream, cudaStreamLegacy and
// cudaStreamPerThread; issued ids start above them.
inline constexpr uint64_t kStreamLegacyDefault = 0;
inline constexpr uint64_t kStreamLegacy = 1;
inline constexpr uint64_t kStreamPerThread = 2;
inline bool is_builtin_stream(uint64_t id) { return id <= kStreamPerThread; }

template <typename T>
class handle_table {
 public:
  uint64_t add(T value) {
    const uint64_t id = next_;
    next_ += 8;  // keeps ids pointer-aligned-looking, like real handles
    items_.emplace(id, std::move(value));
    return id;
  }
  T* find(uint64_t id) {
    auto it = items_.find(id);
    return it == items_.end() ? nullptr : &it->second;
  }
  bool erase(uint64_t id) { return items_.erase(id) == 1; }
  size_t size() const { return items_.size(); }
  std::unordered_map<uint64_t, T>& all() { return items_; }

 private:
  uint64_t next_ = 0x1000;
  std::unordered_map<uint64_t, T> items_;
};

}  // namespace vgpu::host
