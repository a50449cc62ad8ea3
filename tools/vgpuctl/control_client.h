// vgpuctl's side of the control socket (protocol/control_protocol.h): one
// request, the records of the reply.
#pragma once

#include <string>
#include <vector>

#include "protocol/control_protocol.h"

namespace vgpuctl {

using vgpu::control::record;

// Sends `request` and reads the reply. False and `why` (in operators' words)
// when the mediator cannot be reached or answers something else.
bool query(const std::string& socket_path, const std::string& request, std::vector<record>* out, std::string* why);

// The records of one kind.
std::vector<record> of_kind(const std::vector<record>& all, const std::string& kind);
// The first record of a kind (an empty one when there is none).
record first(const std::vector<record>& all, const std::string& kind);

}  // namespace vgpuctl
