// The host side of the vgpu-stub device: the mediator is QEMU's ivshmem
// server and peer 0 (protocol/ivshmem_handshake.h). The same server serves a
// VM's QEMU and local guest processes; each connection gets a peer_link.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "protocol/region_layout.h"
#include "stub/shm_region.h"
#include "stub/unique_fd.h"

namespace vgpu::stub {

// Everything the host holds for one connected peer.
struct peer_link {
  unique_fd sock;
  std::shared_ptr<shm_region> region;  // shared: a notifier may outlive the link briefly
  unique_fd host_vectors[protocol::kVectors];   // the guest signals these: doorbells
  unique_fd guest_vectors[protocol::kVectors];  // the host signals these: wake-ups
  pid_t pid = 0;  // of the connecting process (QEMU, or the local guest process)
  uid_t uid = 0;
};

class ivshmem_server {
 public:
  ~ivshmem_server();
  // Binds and listens (a stale socket file from a dead mediator is replaced;
  // a live one is refused). nullptr and `why` on failure.
  static std::unique_ptr<ivshmem_server> listen(const std::string& path, std::string* why);

  // Waits up to timeout_ms for a connection; an empty fd when none came.
  unique_fd accept_peer(int timeout_ms);

  const std::string& path() const { return path_; }
  int fd() const { return fd_.get(); }

 private:
  ivshmem_server() = default;
  std::string path_;
  unique_fd fd_;
};

// Sends the handshake (version, id 1, the region, the vectors) to a freshly
// accepted peer whose region and eventfds are already made. Fills pid/uid.
bool serve_handshake(peer_link& link, std::string* why);

// Makes a peer_link for `sock` with a new region and fresh eventfds.
std::unique_ptr<peer_link> make_peer_link(unique_fd sock, const std::string& region_name,
                                          uint64_t region_bytes, uint32_t channels,
                                          uint64_t ring_bytes, uint64_t features, std::string* why);

}  // namespace vgpu::stub
