// What the mediator counts for one session (one guest connection), written by
// the one GPU worker thread that serves the session and read by the control
// socket and the metrics endpoint. One writer per object, so every update is a
// relaxed load+store of an atomic: no lock and no locked instruction on the
// data plane; readers see each figure whole (never torn), possibly a call old.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>

namespace vgpu::stats {

// Call ids are below this (api_ids.h); a larger one is counted in slot 0 ("unknown").
inline constexpr size_t kCallSlots = 4096;
// Calls kept per session for `vgpuctl trace`.
inline constexpr size_t kTraceDepth = 64;
// Upper bounds (microseconds) of the service-time histogram's buckets; one more
// bucket (+Inf) follows them.
inline constexpr std::array<uint64_t, 14> kLatencyBoundsUs = {1,   2,    5,    10,    20,     50,     100,
                                                              200, 500, 1000, 5000, 20000, 100000, 1000000};
inline constexpr size_t kLatencyBuckets = kLatencyBoundsUs.size() + 1;

// Nanoseconds of the steady clock (what the data plane stamps with).
inline uint64_t mono_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}
// Nanoseconds since the epoch (what operators read).
inline uint64_t wall_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::system_clock::now().time_since_epoch())
                                   .count());
}

// A steady-clock stamp as wall-clock time (the offset is taken once: the data
// plane stamps with the cheaper clock only).
inline uint64_t mono_to_wall(uint64_t mono) {
  static const int64_t offset = static_cast<int64_t>(wall_ns()) - static_cast<int64_t>(mono_ns());
  return mono ? static_cast<uint64_t>(static_cast<int64_t>(mono) + offset) : 0;
}

// Single-writer increment: cheaper than fetch_add, which the writer does not need.
inline void bump(std::atomic<uint64_t>& a, uint64_t n = 1) {
  a.store(a.load(std::memory_order_relaxed) + n, std::memory_order_relaxed);
}

// One call as the host saw it. The writer brackets an update with an odd and
// then an even version (a seqlock), so a reader can tell a torn copy and skip it.
struct trace_entry {
  std::atomic<uint64_t> version{0};
  std::atomic<uint64_t> seq{0};
  std::atomic<uint32_t> call_id{0};
  std::atomic<uint32_t> channel{0};
  std::atomic<int32_t> status{0};
  std::atomic<uint32_t> flags{0};         // kTracePosted, kTraceDeferred, kTraceReplied
  std::atomic<uint64_t> received_ns{0};   // mono: the worker took it off the request ring
  std::atomic<uint64_t> executed_ns{0};   // mono: the executor returned
  std::atomic<uint64_t> replied_ns{0};    // mono: the reply was written (0: posted or still waiting)
  std::atomic<uint64_t> data_len{0};
};
inline constexpr uint32_t kTracePosted = 1, kTraceDeferred = 2, kTraceReplied = 4;

// A copy of a trace entry, for readers.
struct trace_record {
  uint64_t session = 0, seq = 0, received_ns = 0, executed_ns = 0, replied_ns = 0, data_len = 0;
  uint32_t call_id = 0, channel = 0, flags = 0;
  int32_t status = 0;
};

struct session_stats {
  session_stats(uint64_t id, std::string vm, bool vm_conn, int peer_pid)
      : session_id(id), vm_id(std::move(vm)), is_vm(vm_conn), pid(peer_pid) {}

  // Set before the session is shared, constant afterwards.
  const uint64_t session_id;
  const std::string vm_id;
  const bool is_vm;
  const int pid;
  const uint64_t connected_wall_ns = wall_ns();
  std::atomic<uint32_t> worker{~0u};  // index of the worker serving it (set on attach)

  std::array<std::atomic<uint64_t>, kCallSlots> calls{};
  std::array<std::atomic<uint64_t>, kCallSlots> errors{};
  std::atomic<uint64_t> calls_total{0}, errors_total{0};
  std::atomic<uint64_t> bytes_from_guest{0}, bytes_to_guest{0};
  std::array<std::atomic<uint64_t>, kLatencyBuckets> latency{};
  std::atomic<uint64_t> latency_sum_ns{0};
  std::atomic<uint64_t> last_call_mono_ns{0};  // mono_to_wall() for operators
  std::atomic<uint64_t> doorbells{0};
  // The executor's view of the device memory the session holds, and its peak.
  std::atomic<uint64_t> memory_used{0}, memory_peak{0};
  // The VM's memory limit (executor::memory_limit); 0 = none.
  std::atomic<uint64_t> memory_limit{0};
  std::atomic<bool> ended{false};

  std::atomic<uint64_t> trace_next{0};
  std::array<trace_entry, kTraceDepth> trace{};

  // --- writer side (the worker thread) ---
  static size_t slot(uint16_t call_id) { return call_id < kCallSlots ? call_id : 0; }

  void count_call(uint16_t call_id, uint64_t data_len, bool to_guest, uint64_t received_mono_ns) {
    bump(calls[slot(call_id)]);
    bump(calls_total);
    if (data_len) bump(to_guest ? bytes_to_guest : bytes_from_guest, data_len);
    last_call_mono_ns.store(received_mono_ns, std::memory_order_relaxed);
  }
  void count_error(uint16_t call_id) {
    bump(errors[slot(call_id)]);
    bump(errors_total);
  }
  void observe_service(uint64_t ns) {
    const uint64_t us = ns / 1000;
    size_t b = 0;
    while (b < kLatencyBoundsUs.size() && us >= kLatencyBoundsUs[b]) ++b;
    bump(latency[b]);
    bump(latency_sum_ns, ns);
  }
  void set_memory(uint64_t used) {
    memory_used.store(used, std::memory_order_relaxed);
    if (used > memory_peak.load(std::memory_order_relaxed)) memory_peak.store(used, std::memory_order_relaxed);
  }
  // Starts a trace entry; returns its index for finish_trace.
  size_t begin_trace(uint64_t seq, uint16_t call_id, uint32_t chan, uint64_t received, uint64_t data_len) {
    const uint64_t n = trace_next.load(std::memory_order_relaxed);
    trace_next.store(n + 1, std::memory_order_relaxed);
    trace_entry& e = trace[n % kTraceDepth];
    const uint64_t v = e.version.load(std::memory_order_relaxed);
    e.version.store(v + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    e.seq.store(seq, std::memory_order_relaxed);
    e.call_id.store(call_id, std::memory_order_relaxed);
    e.channel.store(chan, std::memory_order_relaxed);
    e.status.store(0, std::memory_order_relaxed);
    e.flags.store(0, std::memory_order_relaxed);
    e.received_ns.store(received, std::memory_order_relaxed);
    e.executed_ns.store(0, std::memory_order_relaxed);
    e.replied_ns.store(0, std::memory_order_relaxed);
    e.data_len.store(data_len, std::memory_order_relaxed);
    e.version.store(v + 2, std::memory_order_release);
    return n % kTraceDepth;
  }
  // Records what became of the call in entry `i`, if that entry still holds `seq`.
  void update_trace(size_t i, uint64_t seq, int32_t status, uint32_t flags, uint64_t executed, uint64_t replied) {
    trace_entry& e = trace[i];
    if (e.seq.load(std::memory_order_relaxed) != seq) return;
    const uint64_t v = e.version.load(std::memory_order_relaxed);
    e.version.store(v + 1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_release);
    e.status.store(status, std::memory_order_relaxed);
    e.flags.store(flags, std::memory_order_relaxed);
    if (executed) e.executed_ns.store(executed, std::memory_order_relaxed);
    if (replied) e.replied_ns.store(replied, std::memory_order_relaxed);
    e.version.store(v + 2, std::memory_order_release);
  }
};

// Per GPU worker, written by its thread only.
struct worker_stats {
  explicit worker_stats(std::string n) : name(std::move(n)) {}
  const std::string name;
  std::atomic<uint64_t> busy_ns{0};      // time spent in passes that served calls
  std::atomic<uint64_t> queue_depth{0};  // channels with work (requests or a waiting reply) at the last pass
  std::atomic<uint64_t> waiting{0};      // replies waiting on the GPU at the last pass
  std::atomic<uint64_t> sessions{0};
  std::atomic<uint64_t> processed{0};
};

}  // namespace vgpu::stats
