// The statistics registry (actors/stats/) and the control socket's record
// format (protocol/control_protocol.h), without a mediator.
#include <gtest/gtest.h>

#include <algorithm>

#include "actors/stats/stats_registry.h"
#include "protocol/control_protocol.h"

namespace {

using namespace vgpu;

TEST(StatsRegistry, CountsPerVmSurviveTheSessionsEnd) {
  stats::registry reg;
  reg.set_endpoints({{"111", "/run/vgpu/vm111.sock", true}});
  stats::worker_stats& w = reg.add_worker("gpu0/w0");
  auto a = reg.open_session(1, "111", true, 42);
  a->worker.store(0);
  a->count_call(0x0030, 0, false, stats::mono_ns());
  a->count_call(0x0030, 0, false, stats::mono_ns());
  a->count_call(0x0040, 4096, false, stats::mono_ns());
  a->count_call(0x0041, 1024, true, stats::mono_ns());
  a->count_error(0x0030);
  a->set_memory(1 << 20);
  a->doorbells.store(3);
  stats::bump(w.processed, 4);

  stats::snapshot s = reg.take();
  ASSERT_EQ(s.vms.size(), 1u);
  EXPECT_TRUE(s.vms[0].configured);
  EXPECT_EQ(s.vms[0].sessions_now, 1u);
  EXPECT_EQ(s.vms[0].use.calls, 4u);
  EXPECT_EQ(s.vms[0].use.errors, 1u);
  EXPECT_EQ(s.vms[0].use.bytes_from_guest, 4096u);
  EXPECT_EQ(s.vms[0].use.bytes_to_guest, 1024u);
  EXPECT_EQ(s.vms[0].use.memory_used, 1u << 20);
  EXPECT_EQ(s.vms[0].use.per_call.at(0x0030).first, 2u);
  EXPECT_EQ(s.vms[0].use.per_call.at(0x0030).second, 1u);
  ASSERT_EQ(s.sessions.size(), 1u);
  EXPECT_EQ(s.sessions[0].worker, "gpu0/w0");
  EXPECT_EQ(s.total_processed, 4u);

  // The session ends; a second one of the same VM adds to its figures.
  a->set_memory(0);
  a->ended.store(true);
  auto b = reg.open_session(2, "111", true, 43);
  b->count_call(0x0030, 0, false, stats::mono_ns());
  s = reg.take();
  ASSERT_EQ(s.vms.size(), 1u);
  EXPECT_EQ(s.vms[0].sessions_now, 1u);
  EXPECT_EQ(s.vms[0].sessions_total, 2u);
  EXPECT_EQ(s.vms[0].use.calls, 5u);
  EXPECT_EQ(s.vms[0].use.per_call.at(0x0030).first, 3u);
  EXPECT_EQ(s.vms[0].use.memory_used, 0u);
  EXPECT_EQ(s.vms[0].use.memory_peak, 1u << 20);
  EXPECT_EQ(s.vms[0].use.doorbells, 3u);
}

TEST(StatsRegistry, LatencyBucketsAndTraceRing) {
  stats::registry reg;
  auto a = reg.open_session(7, "local-9", false, 9);
  a->observe_service(500);          // 0.5 us: first bucket
  a->observe_service(3000);         // 3 us: the 5 us bucket
  a->observe_service(5000000000);   // 5 s: +Inf
  EXPECT_EQ(a->latency[0].load(), 1u);
  EXPECT_EQ(a->latency[2].load(), 1u);
  EXPECT_EQ(a->latency[stats::kLatencyBuckets - 1].load(), 1u);

  // More calls than the ring holds: the last kTraceDepth remain, oldest first.
  const size_t n = stats::kTraceDepth + 10;
  for (size_t i = 1; i <= n; ++i) {
    const size_t at = a->begin_trace(i, 0x0030, 0, 1000 + i, 0);
    a->update_trace(at, i, 0, stats::kTraceReplied, 2000 + i, 3000 + i);
  }
  auto t = reg.trace("local-9", 1000);
  ASSERT_EQ(t.size(), stats::kTraceDepth);
  EXPECT_EQ(t.front().seq, n - stats::kTraceDepth + 1);
  EXPECT_EQ(t.back().seq, n);
  EXPECT_EQ(t.back().replied_ns, 3000 + n);
  EXPECT_EQ(reg.trace("local-9", 5).size(), 5u);
  // A stale update (the entry was reused) changes nothing.
  a->update_trace(0, 1, 99, 0, 1, 1);
  EXPECT_EQ(reg.trace("local-9", 1000).front().status, 0);
  // After the session ended its trace is still there.
  a->ended.store(true);
  EXPECT_EQ(reg.trace("local-9", 3).size(), 3u);
  EXPECT_TRUE(reg.trace("nosuch", 3).empty());
}

TEST(ControlProtocol, RecordsRoundTrip) {
  const std::string line = control::record_writer("vm")
                               .add("id", "111")
                               .add("describe", "a b=c%d\n\u2014")
                               .add("calls", 12)
                               .line();
  // One line, one space between fields: spaces, '=', '%' and newlines inside values are escaped.
  EXPECT_EQ(std::count(line.begin(), line.end(), ' '), 3);
  EXPECT_EQ(line.find('\n'), line.size() - 1);
  const control::record r = control::parse_record(line.substr(0, line.size() - 1));
  EXPECT_EQ(r.kind, "vm");
  EXPECT_EQ(r.get("id"), "111");
  EXPECT_EQ(r.get("describe"), "a b=c%d\n\u2014");
  EXPECT_EQ(r.num("calls"), 12u);
  EXPECT_EQ(r.get("missing"), "");
}

}  // namespace

// Every local process is a VM of its own (local-<pid>): ended ones are kept only
// up to a bound, else the mediator grows with every guest that ever ran (branch
// isolation: integration.cycles found ~78 KiB per process).
TEST(StatsRegistry, EndedLocalProcessesAreKeptOnlyUpToABound) {
  stats::registry reg;
  auto live = reg.open_session(1, "local-1", false, 1);
  for (int i = 2; i < 502; ++i) {
    auto s = reg.open_session(static_cast<uint64_t>(i), "local-" + std::to_string(i), false, i);
    s->ended.store(true, std::memory_order_release);
  }
  const stats::snapshot snap = reg.take();
  EXPECT_LE(snap.vms.size(), 40u);
  bool live_kept = false;
  for (const auto& v : snap.vms) live_kept |= v.id == "local-1";
  EXPECT_TRUE(live_kept) << "a VM with a live session was dropped";
}
