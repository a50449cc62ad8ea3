// vgpuctl status and vgpuctl top.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <thread>

#include "tools/vgpuctl/commands.h"
#include "tools/vgpuctl/control_client.h"
#include "tools/vgpuctl/status_view.h"

namespace vgpuctl {

bool wants_help(const args& a) {
  for (const auto& x : a)
    if (x == "--help" || x == "-h") return true;
  return false;
}

namespace {
int unreachable(const global_options& g, const std::string& why) {
  std::fprintf(stderr, "vgpuctl: cannot reach the vgpu mediator: %s\n", why.c_str());
  std::fprintf(stderr, "vgpuctl: `vgpuctl%s%s doctor` says why\n", g.socket_given ? " --socket " : "",
               g.socket_given ? g.socket.c_str() : "");
  return 1;
}
}  // namespace

int cmd_status(const global_options& g, const args& a) {
  if (wants_help(a)) {
    std::printf(
        "usage: vgpuctl status\n\n"
        "What the mediator serves now: its executor (a GPU, or the CPU reference\n"
        "executor), sockets, GPU workers (sessions, calls, busy time, queue), every VM\n"
        "(sessions now/ever, calls, errors, calls/s over the last second, data in and\n"
        "out, device memory now, peak and limit, last call), every session, and the\n"
        "calls of each VM by name. Exit status 1 when the mediator cannot be reached.\n");
    return 0;
  }
  if (!a.empty()) {
    std::fprintf(stderr, "vgpuctl status: unexpected argument '%s' (see --help)\n", a.front().c_str());
    return 2;
  }
  std::vector<record> recs;
  std::string why;
  if (!query(g.socket, "status", &recs, &why)) return unreachable(g, why);
  std::fputs(render_status(recs, nullptr, true).c_str(), stdout);
  return 0;
}

int cmd_top(const global_options& g, const args& a) {
  bool once = false;
  for (const auto& x : a) {
    if (x == "--help" || x == "-h") {
      std::printf(
          "usage: vgpuctl top [--once]\n\n"
          "vgpuctl status as a live view, refreshed every second; calls/s is measured\n"
          "between two refreshes. Ctrl-C ends it.\n"
          "  --once   print one view and exit (for scripts; calls/s is the mediator's\n"
          "           figure over its last second)\n");
      return 0;
    }
    if (x == "--once") {
      once = true;
    } else {
      std::fprintf(stderr, "vgpuctl top: unexpected argument '%s' (see --help)\n", x.c_str());
      return 2;
    }
  }
  std::map<std::string, uint64_t> last_calls;
  auto last_at = std::chrono::steady_clock::now();
  bool have_last = false;
  for (;;) {
    std::vector<record> recs;
    std::string why;
    if (!query(g.socket, "status", &recs, &why)) return unreachable(g, why);
    const auto at = std::chrono::steady_clock::now();
    std::map<std::string, double> rates;
    const double secs = std::chrono::duration<double>(at - last_at).count();
    for (const auto& v : of_kind(recs, "vm")) {
      const uint64_t calls = v.num("calls");
      const auto it = last_calls.find(v.get("id"));
      rates[v.get("id")] = have_last && it != last_calls.end() && calls >= it->second && secs > 0
                               ? static_cast<double>(calls - it->second) / secs
                               : std::strtod(v.get("calls_per_s").c_str(), nullptr);
      last_calls[v.get("id")] = calls;
    }
    last_at = at;
    have_last = true;
    const std::string frame = render_status(recs, &rates, false);
    if (once) {
      std::fputs(frame.c_str(), stdout);
      return 0;
    }
    // Home and clear, then the frame: a steady picture in a terminal.
    std::fputs(("\033[H\033[2J" + frame + "\n(vgpuctl top: every second; Ctrl-C to quit)\n").c_str(), stdout);
    std::fflush(stdout);
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

}  // namespace vgpuctl
