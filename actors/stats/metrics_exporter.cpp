#include "actors/stats/metrics_exporter.h"

#include <limits>

#include <prometheus/collectable.h>
#include <prometheus/exposer.h>
#include <prometheus/metric_family.h>

#include "api_ids.h"

namespace vgpu::stats {

namespace {
using prometheus::ClientMetric;
using prometheus::MetricFamily;
using prometheus::MetricType;

MetricFamily family(const char* name, const char* help, MetricType type) {
  MetricFamily f;
  f.name = name;
  f.help = help;
  f.type = type;
  return f;
}

ClientMetric value(std::vector<ClientMetric::Label> labels, double v, MetricType type) {
  ClientMetric m;
  m.label = std::move(labels);
  if (type == MetricType::Counter)
    m.counter.value = v;
  else
    m.gauge.value = v;
  return m;
}

double seconds(uint64_t ns) { return static_cast<double>(ns) / 1e9; }

class collector final : public prometheus::Collectable {
 public:
  explicit collector(registry& reg) : reg_(reg) {}

  std::vector<MetricFamily> Collect() const override {
    const snapshot s = reg_.take();
    const auto C = MetricType::Counter, G = MetricType::Gauge;
    auto info = family("vgpu_executor_info", "What runs the calls: executor=cuda (a GPU) or reference (CPU, not a GPU)", G);
    info.metric.push_back(value({{"executor", s.executor.kind}, {"gpu", s.executor.is_gpu ? "1" : "0"}}, 1, G));
    auto exec_mem = family("vgpu_executor_memory_used_bytes", "Device memory held by all sessions (executor's view)", G);
    exec_mem.metric.push_back(value({}, static_cast<double>(s.executor_bytes), G));
    auto total = family("vgpu_processed_total", "Calls processed by all GPU workers (the log's 'Total processed')", C);
    total.metric.push_back(value({}, static_cast<double>(s.total_processed), C));

    auto calls = family("vgpu_calls_total", "Calls received, per VM and call name", C);
    auto errors = family("vgpu_call_errors_total", "Calls that failed, per VM and call name", C);
    auto bytes = family("vgpu_data_bytes_total", "Data-area bytes per VM; direction=in: guest to host, out: host to guest", C);
    auto latency = family("vgpu_call_duration_seconds", "Service time of a call on its GPU worker, ring to reply", MetricType::Histogram);
    auto mem = family("vgpu_memory_used_bytes", "Device memory the VM's sessions hold now", G);
    auto peak = family("vgpu_memory_peak_bytes", "Most device memory one session of the VM held", G);
    auto limit = family("vgpu_memory_limit_bytes", "The VM's memory limit (0: none)", G);
    auto sessions = family("vgpu_sessions", "Connections of the VM now (a VM's QEMU, or a local process)", G);
    auto sessions_total = family("vgpu_sessions_total", "Connections of the VM since the mediator started", C);
    auto connect = family("vgpu_last_connect_timestamp_seconds", "When the VM last connected (Unix time; 0: never)", G);
    auto last_call = family("vgpu_last_call_timestamp_seconds", "When the VM's last call arrived (Unix time; 0: never)", G);
    auto doorbells = family("vgpu_doorbells_total", "Doorbell rings seen from the VM (a guest rings only when the worker sleeps)", C);
    for (const auto& v : s.vms) {
      const ClientMetric::Label vm{"vm", v.id};
      for (const auto& [id, ce] : v.use.per_call) {
        const char* n = protocol::call_name(id);
        const ClientMetric::Label call{"call", n ? n : "unknown"};
        calls.metric.push_back(value({vm, call}, static_cast<double>(ce.first), C));
        if (ce.second) errors.metric.push_back(value({vm, call}, static_cast<double>(ce.second), C));
      }
      bytes.metric.push_back(value({vm, {"direction", "in"}}, static_cast<double>(v.use.bytes_from_guest), C));
      bytes.metric.push_back(value({vm, {"direction", "out"}}, static_cast<double>(v.use.bytes_to_guest), C));
      ClientMetric h;
      h.label = {vm};
      uint64_t cumulative = 0;
      for (size_t b = 0; b < kLatencyBuckets; ++b) {
        cumulative += v.use.latency[b];
        const double bound = b < kLatencyBoundsUs.size() ? static_cast<double>(kLatencyBoundsUs[b]) / 1e6
                                                         : std::numeric_limits<double>::infinity();
        h.histogram.bucket.push_back({cumulative, bound});
      }
      h.histogram.sample_count = cumulative;
      h.histogram.sample_sum = seconds(v.use.latency_sum_ns);
      latency.metric.push_back(std::move(h));
      mem.metric.push_back(value({vm}, static_cast<double>(v.use.memory_used), G));
      peak.metric.push_back(value({vm}, static_cast<double>(v.use.memory_peak), G));
      limit.metric.push_back(value({vm}, static_cast<double>(v.use.memory_limit), G));
      sessions.metric.push_back(value({vm}, static_cast<double>(v.sessions_now), G));
      sessions_total.metric.push_back(value({vm}, static_cast<double>(v.sessions_total), C));
      connect.metric.push_back(value({vm}, seconds(v.last_connect_wall_ns), G));
      last_call.metric.push_back(value({vm}, seconds(v.use.last_call_wall_ns), G));
      doorbells.metric.push_back(value({vm}, static_cast<double>(v.use.doorbells), C));
    }

    auto busy = family("vgpu_worker_busy_seconds_total", "Time a GPU worker spent serving calls", C);
    auto queue = family("vgpu_worker_queue_depth", "Channels with work (requests or a reply waiting on the GPU) at the worker's last pass", G);
    auto waiting = family("vgpu_worker_waiting_replies", "Replies waiting on the GPU at the worker's last pass", G);
    auto wsessions = family("vgpu_worker_sessions", "Sessions attached to the GPU worker", G);
    auto wprocessed = family("vgpu_worker_processed_total", "Calls the GPU worker processed", C);
    for (const auto& w : s.workers) {
      const ClientMetric::Label l{"worker", w.name};
      busy.metric.push_back(value({l}, seconds(w.busy_ns), C));
      queue.metric.push_back(value({l}, static_cast<double>(w.queue_depth), G));
      waiting.metric.push_back(value({l}, static_cast<double>(w.waiting), G));
      wsessions.metric.push_back(value({l}, static_cast<double>(w.sessions), G));
      wprocessed.metric.push_back(value({l}, static_cast<double>(w.processed), C));
    }
    std::vector<MetricFamily> out;
    for (auto* f : {&info, &exec_mem, &total, &calls, &errors, &bytes, &latency, &mem, &peak, &limit, &sessions,
                    &sessions_total, &connect, &last_call, &doorbells, &busy, &queue, &waiting, &wsessions, &wprocessed})
      if (!f->metric.empty()) out.push_back(std::move(*f));
    return out;
  }

 private:
  registry& reg_;
};
}  // namespace

std::unique_ptr<metrics_exporter> metrics_exporter::start(registry& reg, const std::string& listen, std::string* why) {
  std::unique_ptr<metrics_exporter> m(new metrics_exporter());
  try {
    m->exposer_ = std::make_unique<prometheus::Exposer>(listen, 1);
  } catch (const std::exception& e) {
    *why = "cannot serve metrics on " + listen + ": " + e.what();
    return nullptr;
  }
  auto c = std::make_shared<collector>(reg);
  m->exposer_->RegisterCollectable(c);
  m->collectable_ = c;
  const auto ports = m->exposer_->GetListeningPorts();
  const std::string host = listen.substr(0, listen.rfind(':'));
  m->address_ = ports.empty() ? listen : host + ":" + std::to_string(ports.front());
  return m;
}

metrics_exporter::~metrics_exporter() = default;

}  // namespace vgpu::stats
