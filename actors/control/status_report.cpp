#include "actors/control/status_report.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>

#include "api_ids.h"
#include "protocol/control_protocol.h"

namespace vgpu::control {

namespace {
std::string call_name(uint16_t id) {
  const char* n = protocol::call_name(id);
  return n ? n : "unknown";
}

bool socket_there(const std::string& path) {
  struct stat st;
  return !path.empty() && ::stat(path.c_str(), &st) == 0 && S_ISSOCK(st.st_mode);
}

std::string rate(double r) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.1f", r);
  return buf;
}
}  // namespace

std::string render_status(const stats::snapshot& snap, const mediator_info& info,
                          const std::map<std::string, double>& calls_per_s) {
  std::string out;
  out += record_writer("mediator")
             .add("pid", static_cast<long>(getpid()))
             .add("version", info.version)
             .add("started", snap.started_wall_ns)
             .add("now", snap.taken_wall_ns)
             .add("executor", snap.executor.kind)
             .add("gpu", snap.executor.is_gpu ? 1 : 0)
             .add("devices", snap.executor.devices)
             .add("describe", snap.executor.describe)
             .add("memory_used", snap.executor_bytes)
             .add("total_processed", snap.total_processed)
             .add("socket", info.socket_path)
             .add("control", info.control_path)
             .add("metrics", info.metrics_listen)
             .line();
  for (const auto& ep : snap.endpoints)
    out += record_writer("endpoint")
               .add("vm", ep.vm_id)
               .add("socket", ep.socket_path)
               .add("listening", socket_there(ep.socket_path) ? 1 : 0)
               .line();
  for (const auto& w : snap.workers)
    out += record_writer("worker")
               .add("name", w.name)
               .add("sessions", w.sessions)
               .add("processed", w.processed)
               .add("busy_ns", w.busy_ns)
               .add("queue", w.queue_depth)
               .add("waiting", w.waiting)
               .line();
  for (const auto& v : snap.vms) {
    auto r = calls_per_s.find(v.id);
    out += record_writer("vm")
               .add("id", v.id)
               .add("configured", v.configured ? 1 : 0)
               .add("socket", v.socket_path)
               .add("sessions", v.sessions_now)
               .add("sessions_total", v.sessions_total)
               .add("connected_at", v.last_connect_wall_ns)
               .add("last_call", v.use.last_call_wall_ns)
               .add("calls", v.use.calls)
               .add("errors", v.use.errors)
               .add("bytes_in", v.use.bytes_from_guest)
               .add("bytes_out", v.use.bytes_to_guest)
               .add("doorbells", v.use.doorbells)
               .add("memory_used", v.use.memory_used)
               .add("memory_peak", v.use.memory_peak)
               .add("memory_limit", v.use.memory_limit)
               .add("latency_sum_ns", v.use.latency_sum_ns)
               .add("calls_per_s", rate(r == calls_per_s.end() ? 0.0 : r->second))
               .line();
    for (const auto& [id, ce] : v.use.per_call)
      out += record_writer("call").add("vm", v.id).add("name", call_name(id)).add("calls", ce.first).add("errors", ce.second).line();
    for (size_t b = 0; b < stats::kLatencyBuckets; ++b)
      if (v.use.latency[b])
        out += record_writer("latency")
                   .add("vm", v.id)
                   .add("le_us", b < stats::kLatencyBoundsUs.size() ? std::to_string(stats::kLatencyBoundsUs[b]) : "inf")
                   .add("count", v.use.latency[b])
                   .line();
  }
  for (const auto& s : snap.sessions)
    out += record_writer("session")
               .add("id", s.id)
               .add("vm", s.vm_id)
               .add("pid", s.pid)
               .add("worker", s.worker)
               .add("connected_at", s.connected_wall_ns)
               .add("last_call", s.use.last_call_wall_ns)
               .add("calls", s.use.calls)
               .add("errors", s.use.errors)
               .add("bytes_in", s.use.bytes_from_guest)
               .add("bytes_out", s.use.bytes_to_guest)
               .add("doorbells", s.use.doorbells)
               .add("memory_used", s.use.memory_used)
               .line();
  return out;
}

std::string render_trace(const std::vector<stats::trace_record>& records) {
  std::string out;
  for (const auto& t : records) {
    const char* mode = (t.flags & stats::kTracePosted)     ? "posted"
                       : (t.flags & stats::kTraceDeferred) ? "deferred"
                                                           : "sync";
    out += record_writer("trace")
               .add("session", t.session)
               .add("channel", t.channel)
               .add("seq", t.seq)
               .add("name", call_name(static_cast<uint16_t>(t.call_id)))
               .add("status", t.status)
               .add("mode", mode)
               .add("received", stats::mono_to_wall(t.received_ns))
               .add("exec_ns", t.executed_ns > t.received_ns ? t.executed_ns - t.received_ns : 0)
               .add("reply_ns", t.replied_ns > t.received_ns ? t.replied_ns - t.received_ns : 0)
               .add("data", t.data_len)
               .line();
  }
  return out;
}

}  // namespace vgpu::control
