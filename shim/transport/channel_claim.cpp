#include "shim/transport/channel_claim.h"

#include <unistd.h>

namespace vgpu::shim {

namespace {
protocol::channel_slot* slot(uint8_t* region, const protocol::region_header& h, uint32_t i) {
  return reinterpret_cast<protocol::channel_slot*>(region + h.channel_table_offset) + i;
}
uint32_t token() { return static_cast<uint32_t>(getpid()) | 0x80000000u; }
}  // namespace

bool claim_channel(uint8_t* region, const protocol::region_header& h, uint32_t* index, std::string* why) {
  for (uint32_t i = 0; i < h.channel_count; ++i) {
    uint32_t expected = 0;
    auto* s = slot(region, h, i);
    if (s->owner.compare_exchange_strong(expected, token(), std::memory_order_acq_rel)) {
      s->generation.fetch_add(1, std::memory_order_relaxed);
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
