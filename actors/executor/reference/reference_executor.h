// Internals of the reference executor (the CPU one), shared by its files.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>

#include <driver_types.h>

#include "actors/executor/executor.h"

namespace vgpu::host::reference {

// Fake device addresses start here: far from where Linux puts heap and
// libraries, so a guest pointer is never mistaken for a host one in logs.
inline constexpr uint64_t kFirstDeviceAddress = 0x7a0000000000ull;
inline constexpr uint64_t kDeviceAlignment = 256;  // what cudaMalloc guarantees

// What all sessions of one executor share: the configured device and the
// memory accounting. Sessions hold it by shared_ptr, so a session closed after
// its executor (shutdown order) still accounts correctly. Thread-safe: every
// session runs on its own worker thread.
class shared_state {
 public:
  explicit shared_state(const reference_options& opts);

  const reference_options& opts() const { return opts_; }
  const cudaDeviceProp& props() const { return props_; }

  // Takes `size` bytes from the configured memory; false when that would
  // exceed it (other sessions' allocations count too).
  bool reserve(uint64_t size);
  void release(uint64_t size);
  uint64_t used() const { return used_.load(std::memory_order_relaxed); }

  // A fresh device address for `size` bytes, never handed out before in this
  // process; 0 when the fake address space is exhausted.
  uint64_t take_address(uint64_t size);

 private:
  reference_options opts_;
  cudaDeviceProp props_;
  std::atomic<uint64_t> used_{0};
  std::atomic<uint64_t> next_address_{kFirstDeviceAddress};
};

}  // namespace vgpu::host::reference
