#include "shim/transport/device_ranges.h"

#include <map>
#include <mutex>
#include <shared_mutex>

namespace vgpu::shim {

namespace {
std::shared_mutex g_ranges_mutex;
std::map<uint64_t, uint64_t>& ranges() {  // base -> bytes
  static auto* r = new std::map<uint64_t, uint64_t>;  // outlives static destructors
  return *r;
}
}  // namespace

void remember_device_range(uint64_t base, uint64_t size) {
  std::unique_lock<std::shared_mutex> lock(g_ranges_mutex);
  ranges()[base] = size;
}

void forget_device_range(uint64_t base) {
  std::unique_lock<std::shared_mutex> lock(g_ranges_mutex);
  ranges().erase(base);
}

void forget_device_ranges_in(uint64_t base, uint64_t size) {
  std::unique_lock<std::shared_mutex> lock(g_ranges_mutex);
  auto& r = ranges();
  r.erase(r.lower_bound(base), r.lower_bound(base + size));
}

bool is_device_pointer(const void* p) {
  const auto v = reinterpret_cast<uint64_t>(p);
  std::shared_lock<std::shared_mutex> lock(g_ranges_mutex);
  auto it = ranges().upper_bound(v);
  if (it == ranges().begin()) return false;
  --it;
  return v - it->first < it->second;
}

}  // namespace vgpu::shim
