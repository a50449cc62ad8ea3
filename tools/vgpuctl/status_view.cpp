#include "tools/vgpuctl/status_view.h"

#include <algorithm>
#include <cstdio>

#include "tools/vgpuctl/format.h"

namespace vgpuctl {

namespace {
std::string num(unsigned long long v) { return std::to_string(v); }
std::string fixed1(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", v);
  return buf;
}
}  // namespace

std::string render_status(const std::vector<record>& recs, const std::map<std::string, double>* rates, bool details) {
  const record m = first(recs, "mediator");
  const uint64_t now = m.num("now");
  std::string o;
  o += "mediator   pid " + m.get("pid") + ", vgpu " + m.get("version") + ", up " +
       uptime(now - std::min(now, static_cast<uint64_t>(m.num("started")))) + "\n";
  o += "control    " + m.get("control") + "\n";
  o += "metrics    " + (m.get("metrics").empty() ? std::string("off") : "http://" + m.get("metrics") + "/metrics") + "\n";
  o += "executor   " + m.get("executor") + (m.num("gpu") ? " (GPU)" : " (CPU: NOT A GPU)") + ": " + m.get("describe") + "\n";
  o += "memory     " + bytes(m.num("memory_used")) + " in use on the executor (all sessions)\n";
  const auto vms = of_kind(recs, "vm");
  const auto sessions = of_kind(recs, "session");
  o += "totals     " + m.get("total_processed") + " calls processed, " + num(sessions.size()) + " session(s) now, " +
       num(vms.size()) + " VM(s) seen\n";
  for (const auto& e : of_kind(recs, "endpoint"))
    o += "socket     " + e.get("socket") + (e.get("vm").empty() ? " (local)" : " (vm " + e.get("vm") + ")") +
         (e.num("listening") ? ": listening" : ": MISSING (the socket file is gone)") + "\n";
  for (const auto& w : of_kind(recs, "worker"))
    o += "worker     " + w.get("name") + ": " + w.get("sessions") + " session(s), " + w.get("processed") +
         " calls, busy " + duration_ns(w.num("busy_ns")) + ", queue " + w.get("queue") + ", waiting on GPU " +
         w.get("waiting") + "\n";
  o += "\n" + pad("VM", 16) + pad("SESSIONS", 10) + pad("CALLS", 10) + pad("ERRORS", 8) + pad("CALLS/S", 9) +
       pad("IN", 10) + pad("OUT", 10) + pad("MEMORY", 10) + pad("PEAK", 10) + pad("LIMIT", 8) + "LAST CALL\n";
  for (const auto& v : vms) {
    double rate = std::strtod(v.get("calls_per_s").c_str(), nullptr);
    if (rates) {
      auto it = rates->find(v.get("id"));
      rate = it == rates->end() ? 0.0 : it->second;
    }
    o += pad(v.get("id"), 16) + pad(v.get("sessions") + "/" + v.get("sessions_total"), 10) + pad(v.get("calls"), 10) +
         pad(v.get("errors"), 8) + pad(fixed1(rate), 9) + pad(bytes(v.num("bytes_in")), 10) +
         pad(bytes(v.num("bytes_out")), 10) + pad(bytes(v.num("memory_used")), 10) +
         pad(bytes(v.num("memory_peak")), 10) +
         pad(v.num("memory_limit") ? bytes(v.num("memory_limit")) : std::string("none"), 8) +
         age(v.num("last_call"), now) + "\n";
  }
  if (vms.empty()) o += "(no VM configured and no guest connected yet)\n";
  o += "\n" + pad("SESSION", 9) + pad("VM", 16) + pad("PID", 9) + pad("WORKER", 10) + pad("CALLS", 10) +
       pad("ERRORS", 8) + pad("DOORBELLS", 11) + pad("MEMORY", 10) + "CONNECTED\n";
  for (const auto& s : sessions)
    o += pad(s.get("id"), 9) + pad(s.get("vm"), 16) + pad(s.get("pid"), 9) + pad(s.get("worker"), 10) +
         pad(s.get("calls"), 10) + pad(s.get("errors"), 8) + pad(s.get("doorbells"), 11) +
         pad(bytes(s.num("memory_used")), 10) + age(s.num("connected_at"), now) + "\n";
  if (sessions.empty()) o += "(no session now)\n";
  if (!details) return o;
  o += "\ncalls by name\n";
  for (const auto& v : vms) {
    std::vector<record> calls;
    for (const auto& c : of_kind(recs, "call"))
      if (c.get("vm") == v.get("id")) calls.push_back(c);
    if (calls.empty()) continue;
    std::sort(calls.begin(), calls.end(), [](const record& a, const record& b) { return a.num("calls") > b.num("calls"); });
    o += "  " + v.get("id") + ":";
    for (const auto& c : calls)
      o += " " + c.get("name") + "=" + c.get("calls") + (c.num("errors") ? " (" + c.get("errors") + " failed)" : "");
    o += "\n";
  }
  return o;
}

}  // namespace vgpuctl
