#include "stub/ivshmem_server.h"

#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <cerrno>
#include <cstring>

#include "protocol/ivshmem_handshake.h"

namespace vgpu::stub {

namespace {
bool socket_alive(const sockaddr_un& addr) {
  unique_fd probe(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  return probe && connect(probe.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0;
}
}  // namespace

ivshmem_server::~ivshmem_server() {
  if (fd_) unlink(path_.c_str());
}

std::unique_ptr<ivshmem_server> ivshmem_server::listen(const std::string& path, std::string* why) {
  std::unique_ptr<ivshmem_server> s(new ivshmem_server);
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    *why = "socket path empty or too long: '" + path + "'";
    return nullptr;
  }
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  if (socket_alive(addr)) {
    *why = "another mediator is already listening on " + path;
    return nullptr;
  }
  unlink(path.c_str());  // a stale file left by a mediator that died
  s->fd_.reset(socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!s->fd_ || bind(s->fd_.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0 ||
      ::listen(s->fd_.get(), 64) < 0) {
    *why = "cannot listen on " + path + ": " + std::strerror(errno);
    s->fd_.reset();
    return nullptr;
  }
  s->path_ = path;
  return s;
}

unique_fd ivshmem_server::accept_peer(int timeout_ms) {
  pollfd p{fd_.get(), POLLIN, 0};
  if (poll(&p, 1, timeout_ms) <= 0) return unique_fd();
  return unique_fd(accept4(fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
}

std::unique_ptr<peer_link> make_peer_link(unique_fd sock, const std::string& region_name,
                                          uint64_t region_bytes, uint32_t channels,
                                          uint64_t ring_bytes, uint64_t features, std::string* why) {
  auto link = std::make_unique<peer_link>();
  link->sock = std::move(sock);
  link->region = shm_region::create(region_name, region_bytes, channels, ring_bytes, features, why);
  if (!link->region) return nullptr;
  for (int v = 0; v < protocol::kVectors; ++v) {
    link->host_vectors[v].reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    link->guest_vectors[v].reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
    if (!link->host_vectors[v] || !link->guest_vectors[v]) {
      *why = std::string("eventfd: ") + std::strerror(errno);
      return nullptr;
    }
  }
  ucred cred{};
  socklen_t len = sizeof cred;
  if (getsockopt(link->sock.get(), SOL_SOCKET, SO_PEERCRED, &cred, &len) == 0) {
    link->pid = cred.pid;
    link->uid = cred.uid;
  }
  return link;
}

bool serve_handshake(peer_link& link, std::string* why) {
  using namespace protocol;
  const int s = link.sock.get();
  bool ok = send_ivshmem_msg(s, kIvshmemProtocolVersion, -1) &&
            send_ivshmem_msg(s, kGuestPeerId, -1) &&
            send_ivshmem_msg(s, -1, link.region->fd());
  for (int v = 0; ok && v < kVectors; ++v) ok = send_ivshmem_msg(s, kHostPeerId, link.host_vectors[v].get());
  for (int v = 0; ok && v < kVectors; ++v) ok = send_ivshmem_msg(s, kGuestPeerId, link.guest_vectors[v].get());
  if (!ok) *why = std::string("handshake send failed: ") + std::strerror(errno);
  return ok;
}

}  // namespace vgpu::stub
