#include "shim/transport/blas_handle_bridge.h"

#include <mutex>
#include <unordered_map>

namespace vgpu::shim {

namespace {

struct bridge {
  std::mutex m;
  std::unordered_map<const void*, uint64_t> ids;
};
bridge& live() {
  static auto* b = new bridge;  // never destroyed: handles may be destroyed at exit
  return *b;
}

}  // namespace

void bridge_add_blas_handle(const void* handle, uint64_t host_id) {
  std::lock_guard<std::mutex> lock(live().m);
  live().ids[handle] = host_id;
}

void bridge_remove_blas_handle(const void* handle) {
  std::lock_guard<std::mutex> lock(live().m);
  live().ids.erase(handle);
}

uint64_t bridge_blas_handle_id(const void* handle) {
  std::lock_guard<std::mutex> lock(live().m);
  const auto it = live().ids.find(handle);
  return it == live().ids.end() ? 0 : it->second;
}

}  // namespace vgpu::shim
