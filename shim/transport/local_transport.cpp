#include "shim/transport/local_transport.h"

#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <vector>

#include "protocol/ivshmem_handshake.h"
#include "shim/transport/channel_claim.h"

namespace vgpu::shim {

namespace {

class local_transport final : public transport {
 public:
  ~local_transport() override {
    if (base_ && base_ != MAP_FAILED) {
      release_channel(base_, header_, index_);
      munmap(base_, size_);
    }
    for (int fd : fds_) close(fd);
  }

  bool open(const std::string& path, std::string* why) {
    sock_ = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (sock_ < 0) return fail(why, "socket");
    fds_.push_back(sock_);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    if (path.size() >= sizeof addr.sun_path) {
      *why = "socket path too long: " + path;
      return false;
    }
    std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
    if (connect(sock_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) < 0)
      return fail(why, "connect to " + path);
    protocol::ivshmem_client_view v;
    if (!protocol::read_ivshmem_handshake(sock_, protocol::kVectors, 10000, &v, why)) return false;
    fds_.push_back(v.shm_fd);
    for (int fd : v.host_vectors) fds_.push_back(fd);
    for (int fd : v.own_vectors) fds_.push_back(fd);
    struct stat st {};
    if (fstat(v.shm_fd, &st) < 0) return fail(why, "fstat of the shared memory");
    size_ = static_cast<size_t>(st.st_size);
    base_ = static_cast<uint8_t*>(mmap(nullptr, size_, PROT_READ | PROT_WRITE, MAP_SHARED, v.shm_fd, 0));
    if (base_ == MAP_FAILED) return fail(why, "mmap of the shared memory");
    std::memcpy(&header_, base_, sizeof header_);
    if (!protocol::validate_header(header_, size_, why)) return false;
    uint32_t generation = 0;
    if (!claim_channel(base_, header_, &index_, &generation, why)) return false;
    channel_endpoints ep;
    ep.region = base_;
    ep.header = header_;
    ep.index = index_;
    ep.doorbell_fd = v.host_vectors[0];
    ep.generation = generation;
    ep.wake_fd = (header_.features & protocol::kFeatureHostWakeEventfd) ? v.own_vectors[0] : -1;
    ep.peer_fd = sock_;
    ep.notify_wake_fd = (header_.features & protocol::kFeatureHostWakeEventfd) ? v.own_vectors[1] : -1;
    channel_ = std::make_unique<guest_channel>(ep);
    return channel_->attach(why);
  }

  guest_channel& channel() override { return *channel_; }
  const char* name() const override { return "local"; }

 private:
  static bool fail(std::string* why, const std::string& what) {
    *why = what + ": " + std::strerror(errno);
    return false;
  }

  int sock_ = -1;
  std::vector<int> fds_;
  uint8_t* base_ = nullptr;
  size_t size_ = 0;
  protocol::region_header header_{};
  uint32_t index_ = 0;
  std::unique_ptr<guest_channel> channel_;
};

}  // namespace

std::unique_ptr<transport> connect_local(const std::string& socket_path, std::string* why) {
  auto t = std::make_unique<local_transport>();
  if (!t->open(socket_path, why)) return nullptr;
  return t;
}

}  // namespace vgpu::shim
