// Turns the statistics into the control socket's records
// (protocol/control_protocol.h): what `vgpuctl status` and `trace` read.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "actors/stats/stats_registry.h"

namespace vgpu::control {

// What the mediator is, besides its statistics.
struct mediator_info {
  std::string version;
  std::string socket_path;   // the local socket, empty = none
  std::string control_path;
  std::string metrics_listen;  // the address actually served, empty = off
};

// calls_per_s: per VM id, over the last second.
std::string render_status(const stats::snapshot& snap, const mediator_info& info,
                          const std::map<std::string, double>& calls_per_s);

std::string render_trace(const std::vector<stats::trace_record>& records);

}  // namespace vgpu::control
