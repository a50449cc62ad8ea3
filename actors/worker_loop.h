// The data plane of one GPU worker: a dedicated thread that serves the rings
// of the sessions attached to it. It drains every channel in batches, runs
// each call on the executor and writes the response ring itself, so a call in
// the steady state costs no OS wake-up and no actor mailbox hop. When all
// rings stay empty for spin_us it tells the guests it sleeps (they ring the
// doorbell eventfd) and blocks in epoll, where it also learns that a guest hung up.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "actors/executor/executor.h"
#include "actors/host_session.h"
#include "actors/stats/session_stats.h"
#include "stub/unique_fd.h"

namespace vgpu {

class worker_loop {
 public:
  struct options {
    std::string name;  // "gpu0/w1"
    int spin_us = 50;
    uint32_t index = 0;                    // in the stats registry's worker list
    stats::worker_stats* stats = nullptr;  // its counters; nullptr: a private set
  };

  worker_loop(host::executor& exec, options opts);
  ~worker_loop();
  worker_loop(const worker_loop&) = delete;
  worker_loop& operator=(const worker_loop&) = delete;

  // Ends every session (freeing what it owned) and joins the thread. Idempotent.
  void shutdown();

  // Thread-safe; take effect on the worker thread.
  void attach(std::shared_ptr<host_session> s);
  void detach(uint64_t session_id, const std::string& reason);

  uint64_t processed() const { return processed_.load(std::memory_order_relaxed); }
  size_t sessions() const { return session_count_.load(std::memory_order_relaxed); }
  const std::string& name() const { return opts_.name; }

 private:
  struct command {
    std::shared_ptr<host_session> attach;
    uint64_t detach_id = 0;
    std::string reason;
  };

  enum class serve_result { idle, worked, waiting, broken };

  void run();
  void apply_commands();
  bool serve_all();
  // Serves up to `*budget` cost units of the channel's requests (see kQuantum).
  serve_result serve_channel(host_session& s, channel_state& c, int64_t* budget);
  void follow_claim(host_session& s, channel_state& c);
  void beat_hearts();
  void reply(host_session& s, channel_state& c, const protocol::msg_header& req, int32_t status,
             const uint8_t* payload, uint32_t len);
  void sleep_until_work();
  void end_session(uint64_t id, const std::string& reason);
  void account_memory(host_session& s, channel_state& c);
  void drop_memory(host_session& s, channel_state& c);
  host_session* find(uint64_t id);

  host::executor& exec_;
  options opts_;
  stub::unique_fd epoll_;
  stub::unique_fd control_;  // eventfd: commands are waiting
  std::mutex mutex_;
  std::vector<command> commands_;
  std::vector<std::shared_ptr<host_session>> sessions_;  // worker thread only
  std::vector<uint8_t> request_buf_;
  std::atomic<uint64_t> processed_{0};
  std::atomic<size_t> session_count_{0};
  std::atomic<bool> stop_{false};
  std::atomic<bool> has_commands_{false};
  std::unique_ptr<stats::worker_stats> own_stats_;  // when options gave none
  stats::worker_stats* wstats_ = nullptr;
  bool waiting_ = false;  // some channel's reply waits on the GPU (worker thread only)
  size_t next_first_ = 0;  // the session a pass of serve_all starts with (rotates)
  std::thread thread_;
};

}  // namespace vgpu
