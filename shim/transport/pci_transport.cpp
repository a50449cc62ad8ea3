#include "shim/transport/pci_transport.h"

#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <vector>

#include "shim/transport/channel_claim.h"

namespace vgpu::shim {

namespace {

constexpr const char* kPciDevices = "/sys/bus/pci/devices";
constexpr uint64_t kDoorbellOffset = 12;  // BAR0: IntrMask, IntrStatus, IVPosition, Doorbell
constexpr size_t kRegisterBytes = 256;

unsigned read_hex(const std::string& path) {
  std::ifstream f(path);
  unsigned v = 0;
  f >> std::hex >> v;
  return f ? v : 0;
}

// An mmap of a sysfs resource file, unmapped with the transport.
struct mapping {
  void* base = MAP_FAILED;
  size_t size = 0;
  ~mapping() {
    if (base != MAP_FAILED) munmap(base, size);
  }
  bool open(const std::string& path, size_t want, std::string* why) {
    const int fd = ::open(path.c_str(), O_RDWR | O_SYNC | O_CLOEXEC);
    if (fd < 0) {
      *why = "cannot open " + path + ": " + std::strerror(errno) +
             (errno == EACCES ? " (the guest needs the vgpu udev rule and group: see the README)" : "");
      return false;
    }
    struct stat st {};
    size = want ? want : (fstat(fd, &st) == 0 ? static_cast<size_t>(st.st_size) : 0);
    base = size ? mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0) : MAP_FAILED;
    const int err = errno;
    close(fd);
    if (base == MAP_FAILED) {
      *why = "cannot map " + path + ": " + std::strerror(err) +
             (err == EPERM ? " (kernel lockdown under Secure Boot forbids it)" : "");
      return false;
    }
    return true;
  }
};

// True when the device's region carries vgpu's magic, or when it cannot be
// read at all (then connecting reports why: permissions, lockdown, decode off).
bool may_be_vgpu(const std::string& dir) {
  mapping m;
  std::string why;
  if (!m.open(dir + "/resource2", 4096, &why)) return true;
  uint64_t magic = 0;
  std::memcpy(&magic, m.base, sizeof magic);
  return magic == protocol::kRegionMagic;
}

class pci_transport final : public transport {
 public:
  ~pci_transport() override {
    if (channel_) release_channel(static_cast<uint8_t*>(region_.base), header_, index_);
  }

  bool open(const std::string& dir, std::string* why) {
    if (read_hex(dir + "/enable") == 0) {
      *why = dir + " has memory decoding off: write 1 to its 'enable' file as root (the README's boot step does)";
      return false;
    }
    if (!regs_.open(dir + "/resource0", kRegisterBytes, why) || !region_.open(dir + "/resource2", 0, why))
      return false;
    std::memcpy(&header_, region_.base, sizeof header_);
    if (!protocol::validate_header(header_, region_.size, why)) return false;
    auto* base = static_cast<uint8_t*>(region_.base);
    uint32_t generation = 0;
    if (!claim_channel(base, header_, &index_, &generation, why)) return false;
    channel_endpoints ep;
    ep.region = base;
    ep.header = header_;
    ep.index = index_;
    ep.doorbell_mmio = reinterpret_cast<volatile uint32_t*>(static_cast<uint8_t*>(regs_.base) + kDoorbellOffset);
    ep.generation = generation;
    channel_ = std::make_unique<guest_channel>(ep);
    return channel_->attach(why);
  }

  guest_channel& channel() override { return *channel_; }
  const char* name() const override { return "pci"; }

 private:
  mapping regs_;
  mapping region_;
  protocol::region_header header_{};
  uint32_t index_ = 0;
  std::unique_ptr<guest_channel> channel_;
};

}  // namespace

std::string find_vgpu_pci_device() {
  DIR* d = opendir(kPciDevices);
  if (!d) return {};
  std::vector<std::string> candidates;
  while (dirent* e = readdir(d)) {
    if (e->d_name[0] == '.') continue;
    const std::string dir = std::string(kPciDevices) + "/" + e->d_name;
    if (read_hex(dir + "/vendor") == 0x1af4 && read_hex(dir + "/device") == 0x1110) candidates.push_back(dir);
  }
  closedir(d);
  for (const auto& dir : candidates)
    if (may_be_vgpu(dir)) return dir;
  return {};
}

std::unique_ptr<transport> connect_pci(const std::string& sysfs_dir, std::string* why) {
  auto t = std::make_unique<pci_transport>();
  if (!t->open(sysfs_dir, why)) return nullptr;
  return t;
}

}  // namespace vgpu::shim
