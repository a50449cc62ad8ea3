// The Prometheus endpoint (`mediator.metrics-listen`): prometheus-cpp's
// exposer serves /metrics, and one collectable turns a registry snapshot into
// the vgpu_* families at each scrape. Nothing of prometheus-cpp runs per call
// (its histograms lock): the data plane only writes the registry's atomics.
#pragma once

#include <memory>
#include <string>

#include "actors/stats/stats_registry.h"

namespace prometheus {
class Exposer;
}

namespace vgpu::stats {

class metrics_exporter {
 public:
  // Serves on `listen` ("127.0.0.1:9464"; port 0: any free one). nullptr and
  // `why` when it cannot listen.
  static std::unique_ptr<metrics_exporter> start(registry& reg, const std::string& listen, std::string* why);
  ~metrics_exporter();
  // "127.0.0.1:9464": the address actually served.
  const std::string& address() const { return address_; }

 private:
  metrics_exporter() = default;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::shared_ptr<void> collectable_;
  std::string address_;
};

}  // namespace vgpu::stats
