#include "stub/shm_region.h"

#include <fcntl.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <new>

namespace vgpu::stub {

shm_region::~shm_region() {
  if (base_) munmap(base_, layout_.region_bytes);
}

std::unique_ptr<shm_region> shm_region::create(const std::string& name, uint64_t region_bytes,
                                               uint32_t channels, uint64_t ring_bytes,
                                               uint64_t features, std::string* why) {
  std::unique_ptr<shm_region> r(new shm_region);
  if (!protocol::make_layout(region_bytes, channels, ring_bytes, &r->layout_, why)) return nullptr;
  r->layout_.features = features;
  r->layout_.host_generation = static_cast<uint64_t>(getpid()) << 32 | static_cast<uint32_t>(time(nullptr));
  r->fd_.reset(memfd_create(name.c_str(), MFD_CLOEXEC | MFD_ALLOW_SEALING));
  if (!r->fd_) {
    *why = std::string("memfd_create: ") + std::strerror(errno);
    return nullptr;
  }
  if (ftruncate(r->fd_.get(), static_cast<off_t>(region_bytes)) < 0 ||
      fcntl(r->fd_.get(), F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0) {
    *why = std::string("sizing or sealing the region: ") + std::strerror(errno);
    return nullptr;
  }
  void* p = mmap(nullptr, region_bytes, PROT_READ | PROT_WRITE, MAP_SHARED, r->fd_.get(), 0);
  if (p == MAP_FAILED) {
    *why = std::string("mmap of the region: ") + std::strerror(errno);
    return nullptr;
  }
  r->base_ = static_cast<uint8_t*>(p);
  // A fresh memfd reads as zeros: claim words free, ring indices at 0. Only
  // the header needs writing, and the ring control blocks need constructing.
  std::memcpy(r->base_, &r->layout_, sizeof r->layout_);
  for (uint32_t i = 0; i < channels; ++i) {
    const auto v = protocol::channel_at(r->layout_, i);
    new (r->base_ + v.ctl_offset) protocol::channel_ctl();
  }
  return r;
}

}  // namespace vgpu::stub
