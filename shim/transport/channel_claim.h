// Claiming a channel of a shared region for this process. Several processes
// of one VM share a region; each takes a free channel with a CAS on its claim
// word (protocol/region_layout.h, channel_slot). Channels whose owner process
// is gone are released first, so a process that crashed never holds one for long.
#pragma once

#include <cstdint>
#include <string>

#include "protocol/region_layout.h"

namespace vgpu::shim {

// On success *index is the channel and *generation the claim's generation,
// which the host acknowledges (ready_generation) before the rings are used.
bool claim_channel(uint8_t* region, const protocol::region_header& h, uint32_t* index, uint32_t* generation,
                   std::string* why);
void release_channel(uint8_t* region, const protocol::region_header& h, uint32_t index);

}  // namespace vgpu::shim
