// Host functions in streams (cudaLaunchHostFunc, cudaStreamAddCallback). The
// guest posts a token in stream order; when the host's stream reaches it, the
// host writes the token on the channel's notify ring and holds the stream
// until the guest reports it ran the function. A thread of the shim, started
// at the first host function, consumes the notify ring and runs them in order.
#include <poll.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <mutex>
#include <thread>
#include <unordered_map>

#include <cuda_runtime_api.h>

#include "api_ids.h"
#include "api_wire.h"
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
};

struct host_funcs {
  std::mutex mutex;
  uint64_t next_token = 1;
  std::unordered_map<uint64_t, pending_fn> pending;
  bool thread_started = false;
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
    s.pending.erase(it);
  }
  if (f.fn) f.fn(f.user);
  else if (f.callback) f.callback(f.stream, cudaSuccess, f.user);
}

void consume(notify_port port) {
  using clock_type = std::chrono::steady_clock;
  auto last = clock_type::now();
  for (;;) {
    uint64_t token = 0;
    uint32_t len = 0;
    const auto st = port.ring.try_read(&token, sizeof token, &len);
    if (st == protocol::read_status::ok && len == sizeof token) {
      run_token(token);
      port.done->store(token, std::memory_order_release);
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

cudaError_t enqueue(cudaStream_t stream, const pending_fn& f) {
  auto& s = state();
  uint64_t token;
  {
    std::lock_guard<std::mutex> lock(s.mutex);
    token = s.next_token++;
    s.pending.emplace(token, f);
    if (!s.thread_started) {
      channel_guard g;
      if (g.status() != cudaSuccess) {
        s.pending.erase(token);
        return g.status();
      }
      std::thread(consume, g->make_notify_port()).detach();
      s.thread_started = true;
    }
  }
  wire::vgpuHostFunc_req req{};
  req.stream = reinterpret_cast<uint64_t>(stream);
  req.token = token;
  const cudaError_t st = guest_post(static_cast<uint16_t>(protocol::call_id::vgpuHostFunc), &req,
                                    wire::vgpuHostFunc_req::wire_size(), nullptr, 0);
  if (st != cudaSuccess) {
    std::lock_guard<std::mutex> lock(s.mutex);
    s.pending.erase(token);
  }
  return st;
}

}  // namespace
}  // namespace vgpu::shim

using namespace vgpu::shim;

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
