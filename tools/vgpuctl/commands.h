// vgpuctl's subcommands. Each parses its own arguments (after the subcommand
// name), prints in operators' words and returns the process exit status:
// 0 fine, 1 the mediator is unreachable or a check failed, 2 usage error.
#pragma once

#include <string>
#include <vector>

namespace vgpuctl {

struct global_options {
  std::string socket;          // the mediator's control socket
  bool socket_given = false;   // --socket or VGPU_CONTROL_SOCKET (else the default)
};

using args = std::vector<std::string>;

int cmd_status(const global_options& g, const args& a);
int cmd_top(const global_options& g, const args& a);
int cmd_doctor(const global_options& g, const args& a);
int cmd_trace(const global_options& g, const args& a);

bool wants_help(const args& a);

}  // namespace vgpuctl
