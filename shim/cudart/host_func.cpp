// Host functions in streams (cudaLaunchHostFunc, cudaStreamAddCallback). The
// guest posts a token in stream order; when the host's stream reaches it, the
// host writes the token on the channel's notify ring and holds the stream
// until the guest reports it ran the function. A thread of the shim, started
// at the first host function, consumes the notify ring and runs them in order.
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <unordered_map>

#include <cuda_runtime_api.h>

#include "api_ids.h"
#include "api_wire.h"
#include "guest_remote.h"
#include "shim/cudart/capture_state.h"
#include "shim/cudart/host_func.h"
#include "shim/cudart/last_error.h"
#include "shim/transport/guest_call.h"
#include "shim/transport/guest_log.h"

namespace vgpu::shim {
namespace {

struct pending_fn {
  cudaHostFn_t fn = nullptr;              // cudaLaunchHostFunc
  cudaStreamCallback_t callback = nullptr;  // cudaStreamAddCallback
  cudaStream_t stream = nullptr;
  void* user = nullptr;
  // Part of a graph (captured, or a host node): runs at every launch of the
  // graph, so the token stays until the process ends.
  bool persistent = false;
};

struct host_funcs {
  std::mutex mutex;
  std::condition_variable ran;  // a host function finished
  uint64_t next_token = 1;
  std::unordered_map<uint64_t, pending_fn> pending;
  std::atomic<size_t> pending_count{0};  // lets synchronising calls skip the lock when none wait
  bool thread_started = false;
  bool consumer_gone = false;  // the notify thread stopped (the mediator went away)
};

host_funcs& state() {
  static auto* s = new host_funcs;
  return *s;
}

void run_token(uint64_t token) {
  pending_fn f;
  {
    auto& s = state();
    std::lock_guard<std::mutex> lock(s.mutex);
    auto it = s.pending.find(token);
    if (it == s.pending.end()) return;  // not ours: the host never sends those
    f = it->second;
  }
  if (f.fn) f.fn(f.user);
  else if (f.callback) f.callback(f.stream, cudaSuccess, f.user);
  if (f.persistent) return;
  auto& s = state();
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    s.pending.erase(token);
    s.pending_count.fetch_sub(1, std::memory_order_release);
  }
  s.ran.notify_all();
}

void consumer_stopped() {
  auto& s = state();
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    s.consumer_gone = true;
  }
  s.ran.notify_all();
}

void consume_loop(notify_port port);

void consume(notify_port port) {
  consume_loop(port);
  consumer_stopped();
}

void consume_loop(notify_port port) {
  using clock_type = std::chrono::steady_clock;
  auto last = clock_type::now();
  uint64_t handled = port.done->load(std::memory_order_relaxed);
  for (;;) {
    uint64_t token = 0;
    uint32_t len = 0;
    const auto st = port.ring.try_read(&token, sizeof token, &len);
    if (st == protocol::read_status::ok && len == sizeof token) {
      run_token(token);
      port.done->store(++handled, std::memory_order_release);
      last = clock_type::now();
      continue;
    }
    if (st == protocol::read_status::corrupt) {
      VGPU_GLOG(error, "[cuda-transport] notify ring corrupt: host functions stop");
      return;
    }
    if (clock_type::now() - last < std::chrono::microseconds(20)) continue;
    // Idle: sleep until the host signals (local transport) or poll slowly.
    port.ring.indices()->consumer_sleeping.store(1, std::memory_order_relaxed);
    std::atomic_thread_fence(std::memory_order_seq_cst);
    if (port.ring.empty_for_consumer()) {
      if (port.wake_fd >= 0) {
        pollfd p[2] = {{port.wake_fd, POLLIN, 0}, {port.peer_fd, POLLRDHUP, 0}};
        poll(p, port.peer_fd >= 0 ? 2 : 1, 100);
        if (p[0].revents & POLLIN) {
          uint64_t v;
          if (read(port.wake_fd, &v, sizeof v) < 0) {
          }
        }
        if (port.peer_fd >= 0 && (p[1].revents & (POLLRDHUP | POLLHUP))) return;  // mediator gone
      } else {
        timespec ts{0, 200000};
        nanosleep(&ts, nullptr);
      }
    }
    port.ring.indices()->consumer_sleeping.store(0, std::memory_order_relaxed);
  }
}

// Registers `f` under a new token and makes sure the notify thread runs.
cudaError_t add_token(const pending_fn& f, uint64_t* out) {
  auto& s = state();
  std::lock_guard<std::mutex> lock(s.mutex);
  const uint64_t token = s.next_token++;
  s.pending.emplace(token, f);
  if (!f.persistent) s.pending_count.fetch_add(1, std::memory_order_release);
  if (!s.thread_started) {
    channel_guard g;
    if (g.status() != cudaSuccess) {
      s.pending.erase(token);
      if (!f.persistent) s.pending_count.fetch_sub(1, std::memory_order_release);
      return g.status();
    }
    std::thread(consume, g->make_notify_port()).detach();
    s.thread_started = true;
  }
  *out = token;
  return cudaSuccess;
}

cudaError_t enqueue(cudaStream_t stream, pending_fn f) {
  auto& s = state();
  f.persistent = stream_capturing(stream);  // captured: it runs at each graph launch
  uint64_t token = 0;
  if (cudaError_t st = add_token(f, &token); st != cudaSuccess) return st;
  wire::vgpuHostFunc_req req{};
  req.stream = reinterpret_cast<uint64_t>(stream);
  req.token = token;
  const cudaError_t st = guest_post(static_cast<uint16_t>(protocol::call_id::vgpuHostFunc), &req,
                                    wire::vgpuHostFunc_req::wire_size(), nullptr, 0);
  if (st != cudaSuccess) {
    std::lock_guard<std::mutex> lock(s.mutex);
    s.pending.erase(token);
    if (!f.persistent) s.pending_count.fetch_sub(1, std::memory_order_release);
  }
  return st;
}

// After the host answered a synchronising call, the stream has passed its
// host functions; the guest's notify thread may still be running them (an
// executor that runs streams synchronously does not wait for the guest).
// Waits until every host function enqueued before the call has run.
// `all` waits for every stream's (cudaDeviceSynchronize).
void wait_host_funcs(cudaStream_t stream, bool all) {
  auto& s = state();
  if (s.pending_count.load(std::memory_order_acquire) == 0) return;
  std::unique_lock<std::mutex> lock(s.mutex);
  const uint64_t horizon = s.next_token;  // functions enqueued later are not waited for
  auto outstanding = [&] {
    for (const auto& [token, f] : s.pending)
      if (token < horizon && !f.persistent && (all || f.stream == stream)) return true;
    return false;
  };
  while (outstanding() && !s.consumer_gone) s.ran.wait_for(lock, std::chrono::milliseconds(100));
}

}  // namespace

cudaError_t graph_host_token(cudaHostFn_t fn, void* user, uint64_t* token) {
  pending_fn f{fn, nullptr, nullptr, user};
  f.persistent = true;
  return add_token(f, token);
}

}  // namespace vgpu::shim

using namespace vgpu::shim;

extern "C" cudaError_t cudaStreamSynchronize(cudaStream_t stream) {
  // A capturing stream cannot be waited for (the capture is invalidated).
  if (cudaError_t refused = refuse_in_capture(stream); refused != cudaSuccess) return finish(refused);
  const cudaError_t st = vgpu::remote::cudaStreamSynchronize(stream);
  if (st == cudaSuccess) wait_host_funcs(stream, false);
  return finish(st);
}

extern "C" cudaError_t cudaStreamSynchronize_ptsz(cudaStream_t stream) {
  return cudaStreamSynchronize(stream ? stream : cudaStreamPerThread);
}

extern "C" cudaError_t cudaDeviceSynchronize() {
  const cudaError_t st = vgpu::remote::cudaDeviceSynchronize();
  if (st == cudaSuccess) wait_host_funcs(nullptr, true);
  return finish(st);
}

extern "C" cudaError_t cudaLaunchHostFunc(cudaStream_t stream, cudaHostFn_t fn, void* userData) {
  if (!fn) return finish(cudaErrorInvalidValue);
  return finish(enqueue(stream, pending_fn{fn, nullptr, stream, userData}));
}

extern "C" cudaError_t cudaLaunchHostFunc_ptsz(cudaStream_t stream, cudaHostFn_t fn, void* userData) {
  return cudaLaunchHostFunc(stream ? stream : cudaStreamPerThread, fn, userData);
}

extern "C" cudaError_t cudaStreamAddCallback(cudaStream_t stream, cudaStreamCallback_t callback, void* userData,
                                             unsigned int flags) {
  if (!callback || flags != 0) return finish(cudaErrorInvalidValue);
  return finish(enqueue(stream, pending_fn{nullptr, callback, stream, userData}));
}

extern "C" cudaError_t cudaStreamAddCallback_ptsz(cudaStream_t stream, cudaStreamCallback_t callback,
                                                  void* userData, unsigned int flags) {
  return cudaStreamAddCallback(stream ? stream : cudaStreamPerThread, callback, userData, flags);
}
