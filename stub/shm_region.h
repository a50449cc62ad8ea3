// The shared region the host creates for one VM or one local process: a
// sealed memfd (so nobody can shrink it under QEMU or the host), mapped here,
// with the header and channels laid out by protocol/region_layout.h. The host
// keeps its own copy of the layout and never re-reads the guest-writable header.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "protocol/region_layout.h"
#include "stub/unique_fd.h"

namespace vgpu::stub {

class shm_region {
 public:
  ~shm_region();
  shm_region(const shm_region&) = delete;
  shm_region& operator=(const shm_region&) = delete;

  // nullptr and `why` when the sizes are unusable or the OS refuses.
  static std::unique_ptr<shm_region> create(const std::string& name, uint64_t region_bytes,
                                            uint32_t channels, uint64_t ring_bytes,
                                            uint64_t features, std::string* why);

  int fd() const { return fd_.get(); }
  uint8_t* base() const { return base_; }
  const protocol::region_header& layout() const { return layout_; }

 private:
  shm_region() = default;
  unique_fd fd_;
  uint8_t* base_ = nullptr;
  protocol::region_header layout_{};
};

}  // namespace vgpu::stub
