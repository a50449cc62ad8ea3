// Claiming a channel of a shared region for this process. Several processes
// of one VM share a region; each takes a free channel with a CAS on its claim
// word. The host frees the channel of a process that is gone.
#pragma once

#include <cstdint>
#include <string>

#include "protocol/region_layout.h"

namespace vgpu::shim {

bool claim_channel(uint8_t* region, const protocol::region_header& h, uint32_t* index, std::string* why);
void release_channel(uint8_t* region, const protocol::region_header& h, uint32_t index);

}  // namespace vgpu::shim
