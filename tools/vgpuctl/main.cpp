// vgpuctl: what the running vgpu-mediator serves, asked over its control
// socket (protocol/control_protocol.h), never read from its logs.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "protocol/control_protocol.h"
#include "tools/vgpuctl/commands.h"

namespace {

void usage(FILE* f) {
  std::fprintf(f,
               "usage: vgpuctl [--socket PATH] COMMAND [options]\n"
               "\n"
               "Asks the running vgpu-mediator over its control socket.\n"
               "\n"
               "commands:\n"
               "  status              executor and GPUs, VMs, sessions, memory, calls/s, totals\n"
               "  top [--once]        the same, refreshed every second\n"
               "  doctor [--vm ID]    checks every hop from the mediator to the GPU, says which failed and why\n"
               "  trace --vm ID       the VM's last calls, hop by hop, with timings\n"
               "\n"
               "  --socket PATH       the mediator's control socket (mediator.control-socket);\n"
               "                      default $VGPU_CONTROL_SOCKET, else %s\n"
               "  vgpuctl COMMAND --help   the command's options\n",
               vgpu::control::kDefaultSocket);
}

}  // namespace

int main(int argc, char** argv) {
  vgpuctl::global_options g;
  g.socket = vgpu::control::kDefaultSocket;
  if (const char* env = std::getenv("VGPU_CONTROL_SOCKET"); env && *env) {
    g.socket = env;
    g.socket_given = true;
  }
  int i = 1;
  for (; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      usage(stdout);
      return 0;
    }
    if (a == "--socket" && i + 1 < argc) {
      g.socket = argv[++i];
      g.socket_given = true;
    } else if (a.rfind("--socket=", 0) == 0) {
      g.socket = a.substr(9);
      g.socket_given = true;
    } else {
      break;
    }
  }
  if (i >= argc) {
    usage(stderr);
    return 2;
  }
  const std::string cmd = argv[i];
  const vgpuctl::args rest(argv + i + 1, argv + argc);
  if (cmd == "status") return vgpuctl::cmd_status(g, rest);
  if (cmd == "top") return vgpuctl::cmd_top(g, rest);
  if (cmd == "doctor") return vgpuctl::cmd_doctor(g, rest);
  if (cmd == "trace") return vgpuctl::cmd_trace(g, rest);
  std::fprintf(stderr, "vgpuctl: unknown command '%s'\n\n", cmd.c_str());
  usage(stderr);
  return 2;
}
