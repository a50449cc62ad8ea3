#include "actors/control/control_server.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <sstream>

#include <spdlog/spdlog.h>

#include "protocol/control_protocol.h"

namespace vgpu::control {

namespace {
constexpr int kPollMs = 200;
constexpr int kClientTimeoutMs = 2000;  // a client that does not send its line in time is dropped
constexpr size_t kMaxRequest = 1024;

bool write_all(int fd, const std::string& s) {
  size_t off = 0;
  while (off < s.size()) {
    const ssize_t n = ::send(fd, s.data() + off, s.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    off += static_cast<size_t>(n);
  }
  return true;
}
}  // namespace

std::unique_ptr<control_server> control_server::start(stats::registry& reg, mediator_info info, std::string* why) {
  const std::string& path = info.control_path;
  sockaddr_un addr{};
  if (path.size() >= sizeof addr.sun_path) {
    *why = "control socket path too long: " + path;
    return nullptr;
  }
  std::error_code ec;
  const std::filesystem::path p(path);
  if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path(), ec);
  stub::unique_fd fd(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!fd) {
    *why = std::string("socket: ") + std::strerror(errno);
    return nullptr;
  }
  addr.sun_family = AF_UNIX;
  std::strncpy(addr.sun_path, path.c_str(), sizeof addr.sun_path - 1);
  // A file left by a mediator that did not stop cleanly is replaced; one that
  // a running mediator answers on is not taken from it.
  if (::connect(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) {
    *why = path + " is in use by another running mediator";
    return nullptr;
  }
  fd.reset(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
  ::unlink(path.c_str());
  if (::bind(fd.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 || ::listen(fd.get(), 16) != 0) {
    *why = "cannot listen on " + path + ": " + std::strerror(errno);
    return nullptr;
  }
  return std::unique_ptr<control_server>(new control_server(reg, std::move(info), std::move(fd)));
}

control_server::control_server(stats::registry& reg, mediator_info info, stub::unique_fd fd)
    : reg_(reg), info_(std::move(info)), listen_fd_(std::move(fd)) {
  thread_ = std::thread([this] { run(); });
}

control_server::~control_server() {
  stop_.store(true);
  thread_.join();
  ::unlink(info_.control_path.c_str());
}

void control_server::run() {
  pollfd pfd{listen_fd_.get(), POLLIN, 0};
  while (!stop_.load()) {
    if (stats::mono_ns() - last_sample_ns_ >= 1000000000ull) sample_rates();
    pfd.revents = 0;
    if (::poll(&pfd, 1, kPollMs) <= 0) continue;
    stub::unique_fd client(::accept4(listen_fd_.get(), nullptr, nullptr, SOCK_CLOEXEC));
    if (client) serve(client.get());
  }
}

void control_server::serve(int fd) {
  std::string request;
  char buf[256];
  while (request.find('\n') == std::string::npos && request.size() < kMaxRequest) {
    pollfd p{fd, POLLIN, 0};
    if (::poll(&p, 1, kClientTimeoutMs) <= 0) return;
    const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    request.append(buf, static_cast<size_t>(n));
  }
  request = request.substr(0, request.find('\n'));
  write_all(fd, std::string(kReplyHeader) + "\n" + answer(request) + "end\n");
}

std::string control_server::answer(const std::string& request) {
  std::istringstream in(request);
  std::string cmd, arg;
  in >> cmd;
  if (cmd == "ping") return "";
  if (cmd == "status") {
    std::map<std::string, double> rates;
    {
      std::lock_guard<std::mutex> lock(rates_mutex_);
      rates = rates_;
    }
    return render_status(reg_.take(), info_, rates);
  }
  if (cmd == "trace") {
    size_t n = stats::kTraceDepth;
    in >> arg >> n;
    if (arg.empty()) return record_writer("error").add("message", "trace needs a VM id").line();
    return render_trace(reg_.trace(arg, n));
  }
  return record_writer("error").add("message", "unknown request '" + cmd + "' (ping, status, trace)").line();
}

void control_server::sample_rates() {
  const uint64_t now = stats::mono_ns();
  const stats::snapshot snap = reg_.take();
  std::lock_guard<std::mutex> lock(rates_mutex_);
  const double secs = last_sample_ns_ ? static_cast<double>(now - last_sample_ns_) / 1e9 : 0.0;
  for (const auto& v : snap.vms) {
    const auto it = last_calls_.find(v.id);
    const uint64_t before = it == last_calls_.end() ? 0 : it->second;  // a VM new since the last sample
    rates_[v.id] = secs > 0 && v.use.calls >= before ? static_cast<double>(v.use.calls - before) / secs : 0.0;
    last_calls_[v.id] = v.use.calls;
  }
  last_sample_ns_ = now;
}

}  // namespace vgpu::control
