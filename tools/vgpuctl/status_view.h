// The text of `vgpuctl status` and of each frame of `vgpuctl top`.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "tools/vgpuctl/control_client.h"

namespace vgpuctl {

// `rates`: calls/s per VM to show (else the mediator's own figure).
std::string render_status(const std::vector<record>& recs, const std::map<std::string, double>* rates, bool details);

}  // namespace vgpuctl
