// The mediator's statistics: every session's and worker's counters, what the
// mediator serves (executor, sockets), and the figures of sessions that have
// ended, folded per VM so that counters never go backwards. The registry's
// mutex guards only the lists (a session opening or ending, a reader taking a
// snapshot): the data plane writes the counters without it (session_stats.h).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "actors/stats/session_stats.h"

namespace vgpu::stats {

// A socket the mediator listens on: the local one, or a VM's ([vm.<id>]).
struct endpoint_info {
  std::string vm_id;  // empty for the local socket
  std::string socket_path;
  bool is_vm = false;
};

struct executor_info {
  std::string kind;      // cuda | reference
  std::string describe;  // the startup line
  bool is_gpu = false;
  int devices = 0;
  std::function<uint64_t()> bytes_in_use;  // all sessions' device memory
};

// Figures of a VM (all its sessions, live and ended), or of one session.
struct usage {
  uint64_t calls = 0, errors = 0, bytes_from_guest = 0, bytes_to_guest = 0, doorbells = 0;
  uint64_t memory_used = 0, memory_peak = 0, memory_limit = 0;
  uint64_t last_call_wall_ns = 0;
  uint64_t latency_sum_ns = 0;
  std::array<uint64_t, kLatencyBuckets> latency{};
  std::map<uint16_t, std::pair<uint64_t, uint64_t>> per_call;  // call id -> calls, errors (non-zero only)
  void add(const session_stats& s);
};

struct session_view {
  uint64_t id = 0;
  std::string vm_id;
  int pid = 0;
  std::string worker;
  uint64_t connected_wall_ns = 0;
  usage use;
};

struct vm_view {
  std::string id;
  bool configured = false;  // a [vm.<id>] section (else: a local process, local-<pid>)
  std::string socket_path;
  uint64_t sessions_now = 0, sessions_total = 0;
  uint64_t last_connect_wall_ns = 0;
  usage use;
};

struct worker_view {
  std::string name;
  uint64_t busy_ns = 0, queue_depth = 0, waiting = 0, sessions = 0, processed = 0;
};

struct snapshot {
  uint64_t taken_wall_ns = 0, started_wall_ns = 0;
  executor_info executor;
  uint64_t executor_bytes = 0;
  std::vector<endpoint_info> endpoints;
  std::vector<worker_view> workers;
  std::vector<vm_view> vms;  // configured VMs first, then local processes by id
  std::vector<session_view> sessions;
  uint64_t total_processed = 0;
};

class registry {
 public:
  registry();

  void set_executor(executor_info e);
  void set_endpoints(std::vector<endpoint_info> e);
  // Before the workers start; the returned object lives as long as the registry.
  worker_stats& add_worker(const std::string& name);

  // A new connection. The worker marks it ended; the registry folds it into
  // its VM's figures at the next snapshot.
  std::shared_ptr<session_stats> open_session(uint64_t id, const std::string& vm_id, bool is_vm, int pid);

  snapshot take();
  // The last calls of a VM's sessions (its live ones, else its last one), oldest first.
  std::vector<trace_record> trace(const std::string& vm_id, size_t max);

 private:
  struct vm_totals {
    uint64_t sessions_total = 0;
    uint64_t last_connect_wall_ns = 0;
    usage retired;  // sessions that ended
    std::shared_ptr<session_stats> last;  // kept for trace after the guest is gone
  };
  void fold_ended_locked();

  mutable std::mutex mutex_;
  const uint64_t started_wall_ns_;
  executor_info executor_;
  std::vector<endpoint_info> endpoints_;
  std::vector<std::unique_ptr<worker_stats>> workers_;
  std::vector<std::shared_ptr<session_stats>> live_;
  std::map<std::string, vm_totals> vms_;
};

}  // namespace vgpu::stats
