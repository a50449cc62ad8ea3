#include "tools/vgpuctl/control_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace vgpuctl {

namespace {
constexpr int kTimeoutMs = 5000;  // a mediator that does not answer in time counts as unreachable

struct fd_closer {
  int fd;
  ~fd_closer() {
    if (fd >= 0) ::close(fd);
  }
};
}  // namespace

bool query(const std::string& socket_path, const std::string& request, std::vector<record>* out, std::string* why) {
  out->clear();
  sockaddr_un addr{};
  if (socket_path.size() >= sizeof addr.sun_path) {
    *why = "socket path too long: " + socket_path;
    return false;
  }
  fd_closer fd{::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)};
  if (fd.fd < 0) {
    *why = std::string("socket: ") + std::strerror(errno);
    return false;
  }
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, socket_path.c_str(), sizeof addr.sun_path - 1);
  if (::connect(fd.fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
    *why = "connect(" + socket_path + "): " + std::strerror(errno);
    return false;
  }
  const std::string line = request + "\n";
  if (::send(fd.fd, line.data(), line.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(line.size())) {
    *why = "send to " + socket_path + ": " + std::strerror(errno);
    return false;
  }
  std::string reply;
  char buf[65536];
  for (;;) {
    pollfd p{fd.fd, POLLIN, 0};
    if (::poll(&p, 1, kTimeoutMs) <= 0) {
      *why = "the mediator did not answer on " + socket_path + " within 5 s";
      return false;
    }
    const ssize_t n = ::recv(fd.fd, buf, sizeof buf, 0);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    reply.append(buf, static_cast<size_t>(n));
  }
  size_t pos = 0;
  bool header = false, ended = false;
  while (pos < reply.size()) {
    const size_t nl = reply.find('\n', pos);
    const std::string l = reply.substr(pos, nl == std::string::npos ? std::string::npos : nl - pos);
    pos = nl == std::string::npos ? reply.size() : nl + 1;
    if (!header) {
      if (l != vgpu::control::kReplyHeader) {
        *why = "unexpected answer on " + socket_path + " (is it the mediator's control socket?): '" + l + "'";
        return false;
      }
      header = true;
      continue;
    }
    if (l == "end") {
      ended = true;
      break;
    }
    out->push_back(vgpu::control::parse_record(l));
  }
  if (!ended) {
    *why = header ? "the mediator's answer was cut short" : "no answer on " + socket_path;
    return false;
  }
  const record err = first(*out, "error");
  if (!err.kind.empty()) {
    *why = "the mediator says: " + err.get("message");
    return false;
  }
  return true;
}

std::vector<record> of_kind(const std::vector<record>& all, const std::string& kind) {
  std::vector<record> r;
  for (const auto& x : all)
    if (x.kind == kind) r.push_back(x);
  return r;
}

record first(const std::vector<record>& all, const std::string& kind) {
  for (const auto& x : all)
    if (x.kind == kind) return x;
  return record{};
}

}  // namespace vgpuctl
