// The stub-facing front door: accepts connections on the ivshmem server
// sockets (the local socket, and one per configured VM), makes each one a
// region and eventfds, performs the handshake and hands the new session to
// the control plane. Runs on its own thread because accept() blocks;
// everything after the handshake belongs to actors.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "actors/host_session.h"
#include "stub/ivshmem_server.h"

namespace vgpu {

// One listening socket and what a connection on it gets.
struct endpoint {
  std::unique_ptr<stub::ivshmem_server> server;
  bool is_vm = false;     // a VM's QEMU: one connection at a time, many channels
  std::string vm_id;      // for a VM; local processes are named local-<pid>
  uint64_t region_size = 0;
  uint32_t channels = 1;
  uint64_t ring_size = 0;
  uint32_t weight = 1;    // the sessions' scheduling weight (worker_loop.cpp)
  std::shared_ptr<std::atomic<bool>> busy = std::make_shared<std::atomic<bool>>(false);
};

class listener {
 public:
  using on_session = std::function<void(std::shared_ptr<host_session>)>;

  listener(std::vector<endpoint> endpoints, on_session cb);
  ~listener();  // stops accepting and joins

 private:
  void run();
  std::shared_ptr<host_session> admit(endpoint& ep, stub::unique_fd sock);

  std::vector<endpoint> endpoints_;
  on_session cb_;
  std::atomic<bool> stop_{false};
  uint64_t next_id_ = 1;
  std::thread thread_;
};

}  // namespace vgpu
