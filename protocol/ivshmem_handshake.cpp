#include "protocol/ivshmem_handshake.h"

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace vgpu::protocol {

bool send_ivshmem_msg(int sock, int64_t value, int fd) {
  msghdr msg{};
  iovec iov{&value, sizeof value};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  if (fd >= 0) {
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    cmsghdr* c = CMSG_FIRSTHDR(&msg);
    c->cmsg_level = SOL_SOCKET;
    c->cmsg_type = SCM_RIGHTS;
    c->cmsg_len = CMSG_LEN(sizeof(int));
    std::memcpy(CMSG_DATA(c), &fd, sizeof fd);
  }
  for (;;) {
    const ssize_t n = sendmsg(sock, &msg, MSG_NOSIGNAL);
    if (n == static_cast<ssize_t>(sizeof value)) return true;
    if (n < 0 && errno == EINTR) continue;
    return false;
  }
}

bool recv_ivshmem_msg(int sock, int64_t* value, int* fd, int timeout_ms) {
  *fd = -1;
  pollfd p{sock, POLLIN, 0};
  int r;
  do {
    r = poll(&p, 1, timeout_ms);
  } while (r < 0 && errno == EINTR);
  if (r <= 0) {
    if (r == 0) errno = ETIMEDOUT;
    return false;
  }
  msghdr msg{};
  iovec iov{value, sizeof *value};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  ssize_t n;
  do {
    n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | MSG_WAITALL);
  } while (n < 0 && errno == EINTR);
  for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
    if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
        c->cmsg_len == CMSG_LEN(sizeof(int))) {
      std::memcpy(fd, CMSG_DATA(c), sizeof(int));
    }
  }
  if (n != static_cast<ssize_t>(sizeof *value)) {
    if (*fd >= 0) close(*fd);
    *fd = -1;
    if (n == 0) errno = ECONNRESET;
    return false;
  }
  return true;
}

namespace {
void close_all(ivshmem_client_view* v) {
  if (v->shm_fd >= 0) close(v->shm_fd);
  for (int fd : v->host_vectors) close(fd);
  for (int fd : v->own_vectors) close(fd);
  *v = ivshmem_client_view{};
}

bool expect(int sock, int timeout_ms, int64_t* value, int* fd, std::string* why, const char* what) {
  if (recv_ivshmem_msg(sock, value, fd, timeout_ms)) return true;
  *why = std::string("handshake: no ") + what + " from the server: " + std::strerror(errno);
  return false;
}
}  // namespace

bool read_ivshmem_handshake(int sock, int vectors, int timeout_ms, ivshmem_client_view* out,
                            std::string* why) {
  ivshmem_client_view v;
  int64_t value = 0;
  int fd = -1;
  if (!expect(sock, timeout_ms, &value, &fd, why, "protocol version")) return false;
  if (fd >= 0) close(fd);
  if (value != kIvshmemProtocolVersion) {
    *why = "handshake: unsupported ivshmem protocol version " + std::to_string(value);
    return false;
  }
  if (!expect(sock, timeout_ms, &v.own_id, &fd, why, "peer id")) return false;
  if (fd >= 0) close(fd);
  if (!expect(sock, timeout_ms, &value, &v.shm_fd, why, "shared memory")) return false;
  if (value != -1 || v.shm_fd < 0) {
    close_all(&v);
    *why = "handshake: expected the shared-memory fd";
    return false;
  }
  // Peer 0 (the host) first, then our own vectors, as vgpu's server sends them.
  for (int i = 0; i < 2 * vectors; ++i) {
    if (!expect(sock, timeout_ms, &value, &fd, why, "vector eventfd")) {
      close_all(&v);
      return false;
    }
    const bool host = (i < vectors);
    if (fd < 0 || value != (host ? kHostPeerId : v.own_id)) {
      if (fd >= 0) close(fd);
      close_all(&v);
      *why = "handshake: unexpected peer message " + std::to_string(value);
      return false;
    }
    (host ? v.host_vectors : v.own_vectors).push_back(fd);
  }
  *out = v;
  return true;
}

}  // namespace vgpu::protocol
