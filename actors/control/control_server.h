// The control socket: answers `vgpuctl` (protocol/control_protocol.h) from the
// statistics registry, on a thread of its own (accept and read may block; the
// data plane never waits for it). It also samples the call rates once a second.
#pragma once

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>

#include "actors/control/status_report.h"
#include "actors/stats/stats_registry.h"
#include "stub/unique_fd.h"

namespace vgpu::control {

class control_server {
 public:
  // Listens on `info.control_path` (replacing a stale socket file). nullptr and
  // `why` when it cannot.
  static std::unique_ptr<control_server> start(stats::registry& reg, mediator_info info, std::string* why);
  ~control_server();  // stops, joins and removes the socket file

 private:
  control_server(stats::registry& reg, mediator_info info, stub::unique_fd fd);
  void run();
  void serve(int fd);
  std::string answer(const std::string& request);
  void sample_rates();

  stats::registry& reg_;
  mediator_info info_;
  stub::unique_fd listen_fd_;
  std::atomic<bool> stop_{false};
  std::mutex rates_mutex_;
  std::map<std::string, double> rates_;                // calls/s per VM, last second
  std::map<std::string, uint64_t> last_calls_;         // per VM at the last sample
  uint64_t last_sample_ns_ = 0;
  std::thread thread_;
};

}  // namespace vgpu::control
