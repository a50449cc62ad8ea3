// The reference executor: runs remoted calls on the CPU for machines without a
// GPU (CI, laptops). It must never be mistaken for a GPU, hence describe().
#include "actors/executor/reference/reference_executor.h"

#include <algorithm>

#include <spdlog/fmt/fmt.h>

#include "actors/executor/reference/reference_device.h"
#include "actors/executor/reference/reference_session.h"

namespace vgpu::host::reference {

shared_state::shared_state(const reference_options& opts)
    : opts_(opts), props_(make_properties(opts)) {
  opts_.device_count = std::max(opts_.device_count, 0);
}

bool shared_state::reserve(uint64_t size) {
  uint64_t used = used_.load(std::memory_order_relaxed);
  do {
    if (size > opts_.memory_bytes - used) return false;  // used <= memory_bytes always
  } while (!used_.compare_exchange_weak(used, used + size, std::memory_order_relaxed));
  return true;
}

void shared_state::release(uint64_t size) { used_.fetch_sub(size, std::memory_order_relaxed); }

uint64_t shared_state::take_address(uint64_t size) {
  // Rounded up so every base is 256-aligned; a CAS loop rather than fetch_add
  // so that exhaustion (after ~2^63 bytes of allocations) fails instead of
  // wrapping around to addresses handed out before.
  const uint64_t span = (size + kDeviceAlignment - 1) / kDeviceAlignment * kDeviceAlignment;
  uint64_t next = next_address_.load(std::memory_order_relaxed);
  do {
    if (span < size || span > UINT64_MAX - next) return 0;
  } while (!next_address_.compare_exchange_weak(next, next + span, std::memory_order_relaxed));
  return next;
}

namespace {

class reference_executor final : public executor {
 public:
  explicit reference_executor(const reference_options& opts)
      : state_(std::make_shared<shared_state>(opts)) {}

  const char* kind() const override { return "reference"; }

  std::string describe() const override {
    const auto& o = state_->opts();
    return fmt::format(
        "reference executor (CPU, host RAM) — NOT A GPU: results are correct, speed means "
        "nothing ({} device(s), {:.1f} GiB)",
        o.device_count, static_cast<double>(o.memory_bytes) / double(1ull << 30));
  }

  bool is_gpu() const override { return false; }
  int device_count() const override { return state_->opts().device_count; }

  std::unique_ptr<api_handler> open_session(const session_info& info, std::string*) override {
    return std::make_unique<reference_session>(state_, info);
  }

  uint64_t bytes_in_use() const override { return state_->used(); }

 private:
  std::shared_ptr<shared_state> state_;
};

}  // namespace
}  // namespace vgpu::host::reference

namespace vgpu::host {

std::unique_ptr<executor> make_reference_executor(const reference_options& opts) {
  return std::make_unique<reference::reference_executor>(opts);
}

}  // namespace vgpu::host
