// Internals of the cuda executor module, shared by its files.
#pragma once

#include <atomic>
#include <cstdint>
#include <string>
#include <vector>

namespace vgpu::host::cuda {

struct gpu_info {
  std::string name;  // cuDeviceGetName
  int major = 0;     // compute capability
  int minor = 0;
  uint64_t total_bytes = 0;  // cuDeviceTotalMem
};

// What every session of the executor shares. Sessions hold it by shared_ptr,
// so a session closed after its executor still accounts correctly.
struct shared_state {
  std::vector<gpu_info> gpus;  // index = CUDA device ordinal
  int driver_version = 0;
  // Bytes all sessions hold through cuMemAlloc; sessions live on different
  // worker threads.
  std::atomic<uint64_t> used{0};

  int device_count() const { return static_cast<int>(gpus.size()); }
  bool device_ok(int32_t d) const { return d >= 0 && d < device_count(); }
};

}  // namespace vgpu::host::cuda
