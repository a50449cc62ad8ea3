#include "actors/worker_loop.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include <spdlog/spdlog.h>

#include "actors/executor/dispatch.h"
#include "api_ids.h"
#include "protocol/message.h"

namespace vgpu {

namespace {
using clock_type = std::chrono::steady_clock;
constexpr int kBatch = 64;            // records taken from one channel before looking at the next
// Fair service across the sessions of a worker: deficit round robin. Each pass
// a session earns kQuantum cost units per unit of its weight; a request costs
// one unit plus one per kCostBytes of bulk data it moves, so a session copying
// 1 MiB chunks and one making small calls get the same share of the worker's
// time, not the same number of requests. A session with nothing queued keeps
// no credit; one that overdrew (a large chunk) sits out until it is even.
constexpr int64_t kQuantum = 16;
constexpr uint64_t kCostBytes = 64 << 10;
constexpr int kEpollTimeoutMs = 100;  // a safety net; wake-ups come from eventfds
// How often a served region's heartbeat moves (guests in VMs watch it).
constexpr auto kHeartbeatPeriod = std::chrono::milliseconds(100);
constexpr long kWaitingPollNs = 100000;  // 100 us between looks at a stream a guest waits for

// epoll tags: session id in the high bits, what fired in the low bit.
constexpr uint64_t kTagDoorbell = 0, kTagHangup = 1, kTagControl = ~0ull;

const char* call_name_or_unknown(uint16_t id) {
  const char* n = protocol::call_name(id);
  return n ? n : "unknown";
}
}  // namespace

worker_loop::worker_loop(host::executor& exec, options opts)
    : exec_(exec), opts_(std::move(opts)), request_buf_(protocol::kMaxRecordBody) {
  if (!opts_.stats) own_stats_ = std::make_unique<stats::worker_stats>(opts_.name);
  wstats_ = opts_.stats ? opts_.stats : own_stats_.get();
  epoll_.reset(epoll_create1(EPOLL_CLOEXEC));
  control_.reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  epoll_event ev{};
  ev.events = EPOLLIN;
  ev.data.u64 = kTagControl;
  epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, control_.get(), &ev);
  thread_ = std::thread([this] { run(); });
}

worker_loop::~worker_loop() { shutdown(); }

void worker_loop::shutdown() {
  if (!thread_.joinable()) return;
  stop_.store(true);
  const uint64_t one = 1;
  if (write(control_.get(), &one, sizeof one) < 0) {
  }
  thread_.join();
}

void worker_loop::attach(std::shared_ptr<host_session> s) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    commands_.push_back(command{std::move(s), 0, {}});
  }
  has_commands_.store(true, std::memory_order_release);
  const uint64_t one = 1;
  if (write(control_.get(), &one, sizeof one) < 0) {
  }
}

void worker_loop::detach(uint64_t session_id, const std::string& reason) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    commands_.push_back(command{nullptr, session_id, reason});
  }
  has_commands_.store(true, std::memory_order_release);
  const uint64_t one = 1;
  if (write(control_.get(), &one, sizeof one) < 0) {
  }
}

host_session* worker_loop::find(uint64_t id) {
  for (auto& s : sessions_)
    if (s->id == id) return s.get();
  return nullptr;
}

void worker_loop::apply_commands() {
  if (!has_commands_.exchange(false, std::memory_order_acquire)) return;
  std::vector<command> cmds;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    cmds.swap(commands_);
  }
  for (auto& c : cmds) {
    if (c.attach) {
      auto& s = c.attach;
      epoll_event ev{};
      ev.events = EPOLLIN;
      ev.data.u64 = s->id << 1 | kTagDoorbell;
      epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, s->link->host_vectors[0].get(), &ev);
      ev.events = EPOLLRDHUP;
      ev.data.u64 = s->id << 1 | kTagHangup;
      epoll_ctl(epoll_.get(), EPOLL_CTL_ADD, s->link->sock.get(), &ev);
      std::string why;
      const auto& region = *s->link->region;
      s->pinned_region = exec_.pin_region(region.base(), region.layout().region_bytes, &why);
      if (!s->pinned_region && !why.empty())
        spdlog::warn("[vgpu] vm_id={}: region not pinned ({}): copies go through the driver's staging", s->vm_id, why);
      if (!s->stats) s->stats = std::make_shared<stats::session_stats>(s->id, s->vm_id, s->is_vm, 0);
      s->stats->worker.store(opts_.index, std::memory_order_relaxed);
      sessions_.push_back(std::move(s));
    } else {
      end_session(c.detach_id, c.reason);
    }
  }
  session_count_.store(sessions_.size(), std::memory_order_relaxed);
  wstats_->sessions.store(sessions_.size(), std::memory_order_relaxed);
}

// The memory a channel's handler holds moved: the session's figure follows.
void worker_loop::account_memory(host_session& s, channel_state& c) {
  const uint64_t now = c.handler ? c.handler->device_bytes() : 0;
  if (now == c.memory) return;
  s.memory = s.memory - c.memory + now;
  c.memory = now;
  s.stats->set_memory(s.memory);
}

// The channel's handler is about to go (its memory with it).
void worker_loop::drop_memory(host_session& s, channel_state& c) {
  s.memory -= c.memory;
  c.memory = 0;
  s.stats->set_memory(s.memory);
}

// Frees everything the session had on the executor (on this thread, the only
// one that used its handlers), closes the link so the guest sees the hang-up,
// and reports to the session actor.
void worker_loop::end_session(uint64_t id, const std::string& reason) {
  auto it = std::find_if(sessions_.begin(), sessions_.end(), [id](auto& s) { return s->id == id; });
  if (it == sessions_.end()) return;
  std::shared_ptr<host_session> s = std::move(*it);
  sessions_.erase(it);
  epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, s->link->host_vectors[0].get(), nullptr);
  epoll_ctl(epoll_.get(), EPOLL_CTL_DEL, s->link->sock.get(), nullptr);
  // Release stream callbacks waiting on the guest first: destroying a context
  // waits for its callbacks.
  for (auto& c : s->channels) c.notifier->mark_gone();
  s->channels.clear();  // destroys the handlers: memory, streams, events, context
  s->pinned_region.reset();
  s->link.reset();
  if (s->endpoint_busy) s->endpoint_busy->store(false);
  s->memory = 0;
  s->stats->set_memory(0);
  s->stats->ended.store(true, std::memory_order_release);
  session_count_.store(sessions_.size(), std::memory_order_relaxed);
  wstats_->sessions.store(sessions_.size(), std::memory_order_relaxed);
  if (s->on_end) s->on_end(reason);
}

void worker_loop::reply(host_session& s, channel_state& c, const protocol::msg_header& req,
                        int32_t status, const uint8_t* payload, uint32_t len) {
  protocol::msg_header h{};
  h.call_id = req.call_id;
  h.seq = req.seq;
  h.status = status;
  h.arg_len = len;
  if (status != 0) {
    s.errors.fetch_add(1, std::memory_order_relaxed);
    s.stats->count_error(req.call_id);
  }
  if (!c.channel.write_response(&h, sizeof h, payload, len)) {
    // The guest is behind on reading: keep the reply and stop reading this
    // channel's requests until it fits (never block the worker on a guest).
    c.pending_reply.resize(sizeof h + len);
    std::memcpy(c.pending_reply.data(), &h, sizeof h);
    if (len) std::memcpy(c.pending_reply.data() + sizeof h, payload, len);
  }
}

// A syncpoint call reports the first error a posted call of its channel left.
static int32_t with_deferred_error(channel_state& c, const protocol::call_traits& t, int32_t status) {
  if (t.syncpoint && status == cudaSuccess && c.deferred_error != cudaSuccess) {
    status = c.deferred_error;
    c.deferred_error = cudaSuccess;
  }
  return status;
}

// Follows the channel's claim word: a new claim (another guest process took
// the channel) frees what the previous owner left and resets the rings before
// the host acknowledges it; a released claim frees the owner's resources.
void worker_loop::follow_claim(host_session& s, channel_state& c) {
  auto* slot = c.channel.slot();
  const uint32_t gen = slot->generation.load(std::memory_order_acquire);
  if (gen != c.seen_generation) {
    const bool had = c.handler != nullptr;
    c.notifier->mark_gone();  // releases stream callbacks waiting on the old owner
    drop_memory(s, c);
    c.handler.reset();        // its context, memory, streams, events, modules
    c.channel.reset();
    c.notifier = std::make_shared<channel_notifier>(s.link->region, c.channel.index(),
                                                    s.link->guest_vectors[1].get());
    c.pending_reply.clear();
    c.waiting = nullptr;
    c.deferred_error = cudaSuccess;
    c.seen_generation = gen;
    slot->ready_generation.store(gen, std::memory_order_release);
    if (s.is_vm)
      spdlog::info("[vgpu] vm_id={}: channel {} claimed by a guest process (generation {}){}", s.vm_id,
                   c.channel.index(), gen, had ? ": freed what its previous owner left" : "");
  } else if (c.handler && slot->owner.load(std::memory_order_acquire) == 0) {
    c.notifier->mark_gone();
    drop_memory(s, c);
    c.handler.reset();
    if (s.is_vm)
      spdlog::info("[vgpu] vm_id={}: channel {} released: its guest process is gone, its GPU resources are freed",
                   s.vm_id, c.channel.index());
  }
}

worker_loop::serve_result worker_loop::serve_channel(host_session& s, channel_state& c, int64_t* budget) {
  follow_claim(s, c);
  if (!c.pending_reply.empty()) {
    if (!c.channel.write_response(c.pending_reply.data(), static_cast<uint32_t>(c.pending_reply.size()), nullptr, 0))
      return serve_result::idle;
    c.pending_reply.clear();
  }
  bool did = false;
  if (c.waiting) {
    const std::optional<cudaError_t> done = c.waiting();
    if (!done) return serve_result::waiting;
    c.waiting = nullptr;
    const auto t = protocol::traits_of(c.waiting_header.call_id);
    const int32_t status = with_deferred_error(c, t, *done);
    reply(s, c, c.waiting_header, status, nullptr, 0);
    const uint64_t replied = stats::mono_ns();
    s.stats->observe_service(replied - c.waiting_received_ns);
    s.stats->update_trace(c.waiting_trace, c.waiting_header.seq, status, stats::kTraceDeferred | stats::kTraceReplied,
                          0, replied);
    did = true;
  }
  alignas(8) uint8_t reply_buf[host::kMaxReplyBytes];
  for (int i = 0; i < kBatch && *budget > 0 && c.pending_reply.empty() && !c.waiting; ++i) {
    uint32_t len = 0;
    const auto st = c.channel.read_request(request_buf_.data(), static_cast<uint32_t>(request_buf_.size()), &len);
    if (st == protocol::read_status::empty) break;
    if (st == protocol::read_status::corrupt || len < sizeof(protocol::msg_header)) {
      spdlog::warn("[vgpu] vm_id={}: {} on channel {}: closing session {}", s.vm_id,
                   st == protocol::read_status::corrupt ? "corrupt request ring" : "malformed message framing",
                   c.channel.index(), s.id);
      return serve_result::broken;
    }
    did = true;
    protocol::msg_header m;
    std::memcpy(&m, request_buf_.data(), sizeof m);
    *budget -= 1 + static_cast<int64_t>(m.data_len / kCostBytes);
    // The host's own table decides whether a call is posted, not the guest's flag.
    const protocol::call_traits t = protocol::traits_of(m.call_id);
    s.processed.fetch_add(1, std::memory_order_relaxed);
    processed_.fetch_add(1, std::memory_order_relaxed);
    s.data_bytes.fetch_add(m.data_len, std::memory_order_relaxed);
    // Statistics: counters of this session's own, written by this thread only.
    stats::session_stats& ss = *s.stats;
    const uint64_t received = stats::mono_ns();
    stats::bump(wstats_->processed);
    ss.count_call(m.call_id, m.data_len, protocol::data_to_guest(m.call_id), received);
    const size_t trace_at = ss.begin_trace(m.seq, m.call_id, c.channel.index(), received, m.data_len);
    uint64_t executed = 0;  // when the executor returned
    const auto served = [&](int32_t status, uint32_t flags) {
      const uint64_t at = stats::mono_ns();
      ss.observe_service(at - received);
      ss.update_trace(trace_at, m.seq, status, flags | stats::kTraceReplied, executed ? executed : at, at);
    };
    if (spdlog::should_log(spdlog::level::debug))
      spdlog::debug("[vgpu] vm_id={}: CUDA DOORBELL RING (op=0x{:04x} {}, seq={}, args={}, data={})", s.vm_id,
                    m.call_id, call_name_or_unknown(m.call_id), m.seq, m.arg_len, m.data_len);
    if (m.arg_len != len - sizeof m) {
      reply(s, c, m, cudaErrorInvalidValue, nullptr, 0);
      served(cudaErrorInvalidValue, 0);
      continue;
    }
    if (!c.handler) {
      std::string why;
      c.handler = exec_.open_session(host::session_info{s.vm_id, s.id}, &why);
      s.stats->memory_limit.store(exec_.memory_limit(s.vm_id), std::memory_order_relaxed);
      if (!c.handler) {
        spdlog::error("[vgpu] vm_id={}: cannot open an executor session: {}", s.vm_id, why);
        if (!t.posted) reply(s, c, m, cudaErrorDevicesUnavailable, nullptr, 0);
        served(cudaErrorDevicesUnavailable, t.posted ? stats::kTracePosted : 0);
        continue;
      }
    }
    host::call_context ctx{s.vm_id, s.id, m.device, m.seq, nullptr, c.notifier};
    const host::data_area data(c.channel.data(), c.channel.data_size());
    uint32_t reply_len = 0;
    const cudaError_t status = host::dispatch(*c.handler, ctx, m, request_buf_.data() + sizeof m, data,
                                              reply_buf, &reply_len);
    if (status != cudaSuccess) {
      if (spdlog::should_log(spdlog::level::debug))
        spdlog::debug("[vgpu] vm_id={}: {} seq={} failed: error {}", s.vm_id, call_name_or_unknown(m.call_id),
                      m.seq, static_cast<int>(status));
      if (!t.known)
        spdlog::warn("[vgpu] vm_id={}: unknown call id 0x{:04x} (seq={}): answered cudaErrorNotSupported",
                     s.vm_id, m.call_id, m.seq);
    }
    executed = stats::mono_ns();
    account_memory(s, c);
    if (t.posted) {
      if (status != cudaSuccess) {
        s.errors.fetch_add(1, std::memory_order_relaxed);
        ss.count_error(m.call_id);
        if (c.deferred_error == cudaSuccess) c.deferred_error = status;
      }
      ss.observe_service(executed - received);
      ss.update_trace(trace_at, m.seq, status, stats::kTracePosted, executed, 0);
      continue;
    }
    if (ctx.defer && status == cudaSuccess) {
      c.waiting = std::move(ctx.defer);
      c.waiting_header = m;
      c.waiting_trace = trace_at;
      c.waiting_received_ns = received;
      ss.update_trace(trace_at, m.seq, 0, stats::kTraceDeferred, executed, 0);
      break;
    }
    const int32_t replied_status = with_deferred_error(c, t, status);
    reply(s, c, m, replied_status, reply_buf, reply_len);
    served(replied_status, 0);
  }
  if (did) c.channel.wake_guest_if_sleeping();
  if (c.waiting) return serve_result::waiting;
  return did ? serve_result::worked : serve_result::idle;
}

bool worker_loop::serve_all() {
  bool did = false;
  waiting_ = false;
  uint64_t queued = 0, waiting = 0;
  std::vector<uint64_t> broken;
  // Each pass starts at the next session, so none is always served first.
  const size_t n = sessions_.size();
  if (n != 0) next_first_ = (next_first_ + 1) % n;
  for (size_t k = 0; k < n; ++k) {
    host_session& s = *sessions_[(next_first_ + k) % n];
    const int64_t quantum = kQuantum * s.weight;
    s.deficit = std::min(s.deficit + quantum, quantum);
    bool served = false;
    for (auto& c : s.channels) {
      const serve_result r = serve_channel(s, c, &s.deficit);
      served |= r == serve_result::worked;
      waiting_ |= r == serve_result::waiting;
      queued += r == serve_result::worked || r == serve_result::waiting;
      waiting += r == serve_result::waiting;
      if (r == serve_result::broken) {
        broken.push_back(s.id);
        break;
      }
    }
    did |= served;
    // Out of credit with requests left: there is work, the loop must not sleep.
    if (s.deficit <= 0 && !served) {
      for (auto& c : s.channels) did |= c.channel.has_request();
    }
    if (!served && s.deficit > 0) s.deficit = 0;  // idle: no credit saved up
  }
  for (uint64_t id : broken) end_session(id, "guest broke the protocol");
  // Written only when they change: an idle worker passes here every spin.
  if (wstats_->queue_depth.load(std::memory_order_relaxed) != queued)
    wstats_->queue_depth.store(queued, std::memory_order_relaxed);
  if (wstats_->waiting.load(std::memory_order_relaxed) != waiting)
    wstats_->waiting.store(waiting, std::memory_order_relaxed);
  return did;
}

void worker_loop::sleep_until_work() {
  for (auto& s : sessions_)
    for (auto& c : s->channels) c.channel.set_sleeping(true);
  // Pairs with the guest's fence between publishing a request and reading
  // consumer_sleeping: either we see its request now or it rings the doorbell.
  std::atomic_thread_fence(std::memory_order_seq_cst);
  bool work = false;
  for (auto& s : sessions_)
    for (auto& c : s->channels) work |= c.channel.has_request();
  epoll_event events[64];
  // While a reply waits on the GPU, look again soon rather than sleep long.
  const timespec brief{0, kWaitingPollNs};
  const timespec safety{kEpollTimeoutMs / 1000, (kEpollTimeoutMs % 1000) * 1000000L};
  int n = work ? 0 : epoll_pwait2(epoll_.get(), events, 64, waiting_ ? &brief : &safety, nullptr);
  if (n < 0 && errno == ENOSYS)  // kernels before 5.11: millisecond resolution only
    n = epoll_wait(epoll_.get(), events, 64, waiting_ ? 1 : kEpollTimeoutMs);
  for (auto& s : sessions_)
    for (auto& c : s->channels) c.channel.set_sleeping(false);
  for (int i = 0; i < n; ++i) {
    const uint64_t tag = events[i].data.u64;
    uint64_t drained;
    if (tag == kTagControl) {
      if (read(control_.get(), &drained, sizeof drained) < 0) {
      }
      continue;
    }
    host_session* s = find(tag >> 1);
    if (!s) continue;
    if ((tag & 1) == kTagHangup) {
      end_session(s->id, "guest disconnected");
    } else if (read(s->link->host_vectors[0].get(), &drained, sizeof drained) == sizeof drained) {
      stats::bump(s->stats->doorbells, drained);  // rings since the last read
    }  // else EAGAIN: already drained
  }
}

void worker_loop::beat_hearts() {
  for (auto& s : sessions_) {
    auto* live = reinterpret_cast<protocol::region_live*>(s->link->region->base() + protocol::kLiveOffset);
    live->host_heartbeat.fetch_add(1, std::memory_order_release);
  }
}

void worker_loop::run() {
  const auto spin = std::chrono::microseconds(opts_.spin_us);
  auto last_work = clock_type::now();
  auto last_beat = last_work;
  while (!stop_.load(std::memory_order_relaxed)) {
    apply_commands();
    const auto now = clock_type::now();
    if (now - last_beat > kHeartbeatPeriod) {
      beat_hearts();
      last_beat = now;
    }
    if (serve_all()) {
      const auto done = clock_type::now();
      stats::bump(wstats_->busy_ns, static_cast<uint64_t>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(done - now).count()));
      last_work = done;
      continue;
    }
    if (clock_type::now() - last_work < spin) {
      __builtin_ia32_pause();
      continue;
    }
    sleep_until_work();
    last_work = clock_type::now();
  }
  while (!sessions_.empty()) end_session(sessions_.front()->id, "mediator shutting down");
}

}  // namespace vgpu
