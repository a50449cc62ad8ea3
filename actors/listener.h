// The stub-facing front door: accepts connections on the ivshmem server
// socket, makes each one a region and eventfds, performs the handshake and
// hands the new session to the control plane. Runs on its own thread because
// accept() blocks; everything after the handshake belongs to actors.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <thread>

#include "actors/host_session.h"
#include "actors/mediator_options.h"
#include "stub/ivshmem_server.h"

namespace vgpu {

class listener {
 public:
  using on_session = std::function<void(std::shared_ptr<host_session>)>;

  listener(std::unique_ptr<stub::ivshmem_server> server, const mediator_options& opts, on_session cb);
  ~listener();  // stops accepting and joins

 private:
  void run();
  std::shared_ptr<host_session> admit(stub::unique_fd sock);

  std::unique_ptr<stub::ivshmem_server> server_;
  mediator_options opts_;
  on_session cb_;
  std::atomic<bool> stop_{false};
  uint64_t next_id_ = 1;
  std::thread thread_;
};

}  // namespace vgpu
