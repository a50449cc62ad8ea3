#include "shim/transport/guest_call.h"

#include <pthread.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <string>

#include "shim/transport/guest_log.h"
#include "shim/transport/local_transport.h"
#include "shim/transport/pci_transport.h"

namespace vgpu::shim {

namespace {

constexpr const char* kDefaultSocket = "/run/vgpu/local.sock";

// The process's one connection. Calls of all threads take turns on it.
struct connection_state {
  std::mutex mutex;
  std::unique_ptr<transport> t;
  bool failed_once = false;
};

// Set once a connection is made (read without the channel's lock, which a long
// copy may hold).
std::atomic<bool> g_connected{false};

connection_state& state() {
  static connection_state* s = new connection_state;  // never destroyed: used until exit
  return *s;
}

// A child of fork() must not talk on its parent's channel: it forgets the
// connection (without releasing the parent's channel) and connects anew.
void forget_after_fork() {
  auto& s = state();
  new (&s.mutex) std::mutex;
  (void)s.t.release();  // the mapping and fds stay with the parent's instance
  g_connected.store(false, std::memory_order_release);
}

cudaError_t connect_locked(connection_state& s) {
  if (s.t) return s.t->channel().dead() ? cudaErrorDevicesUnavailable : cudaSuccess;
  static bool atfork_done = (pthread_atfork(nullptr, nullptr, forget_after_fork), true);
  (void)atfork_done;
  // VGPU_TRANSPORT: auto (default: the PCI device when a VM has one, else the
  // local socket), pci, or local.
  const char* env_kind = std::getenv("VGPU_TRANSPORT");
  const std::string kind = env_kind && *env_kind ? env_kind : "auto";
  if (kind != "auto" && kind != "pci" && kind != "local") {
    if (!s.failed_once) VGPU_GLOG(error, "[cuda-transport] VGPU_TRANSPORT=%s: use auto, pci or local", kind.c_str());
    s.failed_once = true;
    return cudaErrorNoDevice;
  }
  std::string path, why;
  if (kind != "local") {
    path = find_vgpu_pci_device();
    if (!path.empty()) s.t = connect_pci(path, &why);
    else if (kind == "pci") why = "no vgpu PCI device (1af4:1110 with the vgpu magic) in /sys/bus/pci/devices";
  }
  if (!s.t && kind != "pci" && path.empty()) {
    const char* env = std::getenv("VGPU_SOCKET");
    path = env && *env ? env : kDefaultSocket;
    s.t = connect_local(path, &why);
  }
  if (!s.t) {
    if (!s.failed_once)
      VGPU_GLOG(error, "[cuda-transport] cannot reach the vgpu mediator at %s: %s (is vgpu-mediator running? set VGPU_SOCKET or VGPU_TRANSPORT)",
                path.empty() ? "the PCI device" : path.c_str(), why.c_str());
    s.failed_once = true;
    return cudaErrorNoDevice;
  }
  g_connected.store(true, std::memory_order_release);
  VGPU_GLOG(info, "[cuda-transport] connected to VGPU-STUB over %s transport at %s", s.t->name(), path.c_str());
  return cudaSuccess;
}

}  // namespace

namespace {
thread_local int t_device = 0;
}  // namespace

bool channel_connected() { return g_connected.load(std::memory_order_acquire); }

void set_thread_device(int device) { t_device = device; }
int thread_device() { return t_device; }

channel_guard::channel_guard() : lock_(state().mutex) {
  auto& s = state();
  status_ = connect_locked(s);
  if (status_ == cudaSuccess) channel_ = &s.t->channel();
}

channel_guard::~channel_guard() = default;

cudaError_t guest_call(uint16_t call_id, const void* req, uint32_t req_len, void* rep,
                       uint32_t rep_len, uint64_t data_len, const void* tail, uint32_t tail_len) {
  channel_guard g;
  if (g.status() != cudaSuccess) return g.status();
  uint64_t seq = 0;
  const cudaError_t st = g->submit(call_id, 0, req, req_len, tail, tail_len, data_len, &seq);
  if (st != cudaSuccess) return st;
  return g->wait(seq, rep, rep_len);
}

cudaError_t guest_post(uint16_t call_id, const void* req, uint32_t req_len, const void* tail,
                       uint32_t tail_len) {
  channel_guard g;
  if (g.status() != cudaSuccess) return g.status();
  uint64_t seq = 0;
  return g->submit(call_id, protocol::kFlagPosted, req, req_len, tail, tail_len, 0, &seq);
}

}  // namespace vgpu::shim
