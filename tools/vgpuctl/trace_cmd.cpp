// vgpuctl trace --vm ID: the VM's last calls as the host saw each one.
#include <cstdio>
#include <cstdlib>

#include "tools/vgpuctl/commands.h"
#include "tools/vgpuctl/control_client.h"
#include "tools/vgpuctl/format.h"

namespace vgpuctl {

int cmd_trace(const global_options& g, const args& a) {
  std::string vm;
  unsigned long last = 32;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] == "--help" || a[i] == "-h") {
      std::printf(
          "usage: vgpuctl trace --vm ID [--last N]\n\n"
          "The VM's last N calls (default 32; the mediator keeps 64 per session), oldest\n"
          "first, from its live sessions or else its last one. For each call, hop by hop:\n"
          "when the GPU worker took it off the channel's request ring, the time until the\n"
          "executor returned (exec), and until the reply was written to the response\n"
          "ring (reply; posted calls get none; a deferred reply waited for the GPU).\n"
          "ID is a [vm.<id>] section's id, or local-<pid> for a local process.\n");
      return 0;
    }
    if (a[i] == "--vm" && i + 1 < a.size()) {
      vm = a[++i];
    } else if (a[i].rfind("--vm=", 0) == 0) {
      vm = a[i].substr(5);
    } else if (a[i] == "--last" && i + 1 < a.size()) {
      last = std::strtoul(a[++i].c_str(), nullptr, 10);
    } else {
      std::fprintf(stderr, "vgpuctl trace: unexpected argument '%s' (see --help)\n", a[i].c_str());
      return 2;
    }
  }
  if (vm.empty()) {
    std::fprintf(stderr, "vgpuctl trace: --vm ID is needed (vgpuctl status lists the VMs)\n");
    return 2;
  }
  std::vector<record> recs;
  std::string why;
  if (!query(g.socket, "trace " + vm + " " + std::to_string(last), &recs, &why)) {
    std::fprintf(stderr, "vgpuctl: cannot reach the vgpu mediator: %s\n", why.c_str());
    return 1;
  }
  const auto calls = of_kind(recs, "trace");
  if (calls.empty()) {
    std::printf("vm %s: no calls recorded (no such VM, or none of its guests has made a call yet)\n", vm.c_str());
    return 0;
  }
  std::printf("vm %s: last %zu call(s), oldest first\n", vm.c_str(), calls.size());
  std::printf("%s%s%s%s%s%s%s%s%s%s\n", pad("RECEIVED", 14).c_str(), pad("SESSION", 9).c_str(), pad("CH", 4).c_str(),
              pad("SEQ", 8).c_str(), pad("CALL", 30).c_str(), pad("MODE", 9).c_str(), pad("STATUS", 8).c_str(),
              pad("EXEC", 11).c_str(), pad("REPLY", 11).c_str(), "DATA");
  for (const auto& c : calls) {
    const std::string reply = c.num("reply_ns") ? duration_ns(c.num("reply_ns"))
                              : c.get("mode") == "posted" ? std::string("(posted)")
                                                          : std::string("(waiting)");
    std::printf("%s%s%s%s%s%s%s%s%s%s\n", pad(clock_time(c.num("received")), 14).c_str(), pad(c.get("session"), 9).c_str(),
                pad(c.get("channel"), 4).c_str(), pad(c.get("seq"), 8).c_str(), pad(c.get("name"), 30).c_str(),
                pad(c.get("mode"), 9).c_str(), pad(c.get("status"), 8).c_str(),
                pad(duration_ns(c.num("exec_ns")), 11).c_str(), pad(reply, 11).c_str(), bytes(c.num("data")).c_str());
  }
  return 0;
}

}  // namespace vgpuctl
