#include "shim/transport/channel_claim.h"

#include <signal.h>
#include <unistd.h>

#include <cerrno>

namespace vgpu::shim {

namespace {
protocol::channel_slot* slot(uint8_t* region, const protocol::region_header& h, uint32_t i) {
  return reinterpret_cast<protocol::channel_slot*>(region + h.channel_table_offset) + i;
}
uint32_t token() { return static_cast<uint32_t>(getpid()) | protocol::kOwnerTokenBit; }

// The owner's process no longer exists in this guest (kill with signal 0
// probes without sending anything; EPERM means it exists under another user).
bool owner_gone(uint32_t owner) {
  const pid_t pid = static_cast<pid_t>(owner & ~protocol::kOwnerTokenBit);
  return pid > 0 && kill(pid, 0) != 0 && errno == ESRCH;
}
}  // namespace

bool claim_channel(uint8_t* region, const protocol::region_header& h, uint32_t* index, uint32_t* generation,
                   std::string* why) {
  const uint32_t mine = token();
  for (uint32_t i = 0; i < h.channel_count; ++i) {
    auto* s = slot(region, h, i);
    uint32_t owner = s->owner.load(std::memory_order_acquire);
    if (owner != 0 && owner != mine && owner_gone(owner))
      s->owner.compare_exchange_strong(owner, 0, std::memory_order_acq_rel);  // the host frees its leftovers
  }
  for (uint32_t i = 0; i < h.channel_count; ++i) {
    uint32_t expected = 0;
    auto* s = slot(region, h, i);
    if (s->owner.compare_exchange_strong(expected, mine, std::memory_order_acq_rel)) {
      *generation = s->generation.fetch_add(1, std::memory_order_acq_rel) + 1;
      *index = i;
      return true;
    }
  }
  *why = "all " + std::to_string(h.channel_count) + " channels of the vgpu device are in use";
  return false;
}

void release_channel(uint8_t* region, const protocol::region_header& h, uint32_t index) {
  uint32_t mine = token();
  slot(region, h, index)->owner.compare_exchange_strong(mine, 0, std::memory_order_acq_rel);
}

}  // namespace vgpu::shim
