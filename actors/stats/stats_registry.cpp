#include "actors/stats/stats_registry.h"

#include <algorithm>

namespace vgpu::stats {

namespace {
uint64_t ld(const std::atomic<uint64_t>& a) { return a.load(std::memory_order_relaxed); }
const std::string kNoWorker = "-";

// A consistent copy of a trace entry, or false when it is being written.
bool read_entry(const trace_entry& e, uint64_t session, trace_record* r) {
  const uint64_t v1 = e.version.load(std::memory_order_acquire);
  if (v1 == 0 || (v1 & 1)) return false;
  r->session = session;
  r->seq = e.seq.load(std::memory_order_relaxed);
  r->call_id = e.call_id.load(std::memory_order_relaxed);
  r->channel = e.channel.load(std::memory_order_relaxed);
  r->status = e.status.load(std::memory_order_relaxed);
  r->flags = e.flags.load(std::memory_order_relaxed);
  r->received_ns = e.received_ns.load(std::memory_order_relaxed);
  r->executed_ns = e.executed_ns.load(std::memory_order_relaxed);
  r->replied_ns = e.replied_ns.load(std::memory_order_relaxed);
  r->data_len = e.data_len.load(std::memory_order_relaxed);
  std::atomic_thread_fence(std::memory_order_acquire);
  return e.version.load(std::memory_order_relaxed) == v1;
}
}  // namespace

void usage::add(const session_stats& s) {
  calls += ld(s.calls_total);
  errors += ld(s.errors_total);
  bytes_from_guest += ld(s.bytes_from_guest);
  bytes_to_guest += ld(s.bytes_to_guest);
  doorbells += ld(s.doorbells);
  memory_used += s.ended.load(std::memory_order_acquire) ? 0 : ld(s.memory_used);
  memory_peak = std::max(memory_peak, ld(s.memory_peak));
  memory_limit = std::max(memory_limit, ld(s.memory_limit));
  last_call_wall_ns = std::max(last_call_wall_ns, mono_to_wall(ld(s.last_call_mono_ns)));
  latency_sum_ns += ld(s.latency_sum_ns);
  for (size_t b = 0; b < kLatencyBuckets; ++b) latency[b] += ld(s.latency[b]);
  if (ld(s.calls_total) == 0) return;
  for (size_t i = 0; i < kCallSlots; ++i) {
    const uint64_t c = ld(s.calls[i]);
    if (c == 0) continue;
    auto& pc = per_call[static_cast<uint16_t>(i)];
    pc.first += c;
    pc.second += ld(s.errors[i]);
  }
}

registry::registry() : started_wall_ns_(wall_ns()) {}

void registry::set_executor(executor_info e) {
  std::lock_guard<std::mutex> lock(mutex_);
  executor_ = std::move(e);
}

void registry::set_endpoints(std::vector<endpoint_info> e) {
  std::lock_guard<std::mutex> lock(mutex_);
  endpoints_ = std::move(e);
  for (const auto& ep : endpoints_)
    if (ep.is_vm) vms_[ep.vm_id];
}

worker_stats& registry::add_worker(const std::string& name) {
  std::lock_guard<std::mutex> lock(mutex_);
  workers_.push_back(std::make_unique<worker_stats>(name));
  return *workers_.back();
}

std::shared_ptr<session_stats> registry::open_session(uint64_t id, const std::string& vm_id, bool is_vm, int pid) {
  auto s = std::make_shared<session_stats>(id, vm_id, is_vm, pid);
  std::lock_guard<std::mutex> lock(mutex_);
  // Ended sessions are folded here too, not only at a snapshot: with neither
  // metrics scraped nor vgpuctl asked, live_ kept every ended session (branch
  // isolation, integration.cycles).
  fold_ended_locked();
  auto& vm = vms_[vm_id];
  ++vm.sessions_total;
  vm.last_connect_wall_ns = s->connected_wall_ns;
  live_.push_back(s);
  return s;
}

void registry::fold_ended_locked() {
  for (auto it = live_.begin(); it != live_.end();) {
    if (!(*it)->ended.load(std::memory_order_acquire)) {
      ++it;
      continue;
    }
    auto& vm = vms_[(*it)->vm_id];
    vm.retired.add(**it);
    vm.retired.memory_used = 0;  // an ended session holds nothing
    vm.last = *it;
    it = live_.erase(it);
  }
  // Bug found by integration.cycles (branch isolation): every local process is
  // a VM of its own (local-<pid>), and each ended one kept its totals and its
  // last session's stats (with the trace ring) forever, ~78 KiB per process: the
  // mediator's RSS grew without bound as guests came and went. Keep only the
  // most recent kKeepEndedLocalVms local processes that have no live session;
  // configured VMs ([vm.<id>]) are a fixed set and are always kept.
  constexpr size_t kKeepEndedLocalVms = 32;
  std::vector<std::pair<uint64_t, std::string>> ended_local;  // (last connect, id)
  for (const auto& [id, t] : vms_) {
    if (!t.last || t.last->is_vm) continue;
    bool live = false;
    for (const auto& s : live_) live |= s->vm_id == id;
    if (!live) ended_local.emplace_back(t.last_connect_wall_ns, id);
  }
  if (ended_local.size() > kKeepEndedLocalVms) {
    std::sort(ended_local.begin(), ended_local.end());
    for (size_t i = 0; i + kKeepEndedLocalVms < ended_local.size(); ++i) vms_.erase(ended_local[i].second);
  }
}

snapshot registry::take() {
  std::lock_guard<std::mutex> lock(mutex_);
  fold_ended_locked();
  snapshot out;
  out.taken_wall_ns = wall_ns();
  out.started_wall_ns = started_wall_ns_;
  out.executor = executor_;
  out.executor_bytes = executor_.bytes_in_use ? executor_.bytes_in_use() : 0;
  out.endpoints = endpoints_;
  for (const auto& w : workers_) {
    out.workers.push_back(worker_view{w->name, ld(w->busy_ns), ld(w->queue_depth), ld(w->waiting),
                                      ld(w->sessions), ld(w->processed)});
    out.total_processed += ld(w->processed);
  }
  std::map<std::string, vm_view> by_id;
  for (const auto& [id, t] : vms_) {
    vm_view v;
    v.id = id;
    v.sessions_total = t.sessions_total;
    v.last_connect_wall_ns = t.last_connect_wall_ns;
    v.use = t.retired;
    by_id[id] = std::move(v);
  }
  for (const auto& ep : endpoints_)
    if (ep.is_vm) {
      by_id[ep.vm_id].configured = true;
      by_id[ep.vm_id].socket_path = ep.socket_path;
    }
  for (const auto& s : live_) {
    session_view sv;
    sv.id = s->session_id;
    sv.vm_id = s->vm_id;
    sv.pid = s->pid;
    const uint32_t w = s->worker.load(std::memory_order_relaxed);
    sv.worker = w < workers_.size() ? workers_[w]->name : kNoWorker;
    sv.connected_wall_ns = s->connected_wall_ns;
    sv.use.add(*s);
    auto& v = by_id[s->vm_id];
    ++v.sessions_now;
    v.use.add(*s);
    out.sessions.push_back(std::move(sv));
  }
  for (auto& [id, v] : by_id)
    if (v.configured) out.vms.push_back(v);
  for (auto& [id, v] : by_id)
    if (!v.configured) out.vms.push_back(std::move(v));
  return out;
}

std::vector<trace_record> registry::trace(const std::string& vm_id, size_t max) {
  std::vector<std::shared_ptr<session_stats>> sources;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    fold_ended_locked();
    for (const auto& s : live_)
      if (s->vm_id == vm_id) sources.push_back(s);
    if (sources.empty()) {
      auto it = vms_.find(vm_id);
      if (it != vms_.end() && it->second.last) sources.push_back(it->second.last);
    }
  }
  std::vector<trace_record> out;
  for (const auto& s : sources) {
    const uint64_t next = s->trace_next.load(std::memory_order_acquire);
    const uint64_t first = next > kTraceDepth ? next - kTraceDepth : 0;
    for (uint64_t n = first; n < next; ++n) {
      trace_record r;
      if (read_entry(s->trace[n % kTraceDepth], s->session_id, &r)) out.push_back(r);
    }
  }
  std::sort(out.begin(), out.end(),
            [](const trace_record& a, const trace_record& b) { return a.received_ns < b.received_ns; });
  if (out.size() > max) out.erase(out.begin(), out.end() - static_cast<long>(max));
  return out;
}

}  // namespace vgpu::stats
