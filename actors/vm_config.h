// The VMs a mediator serves, from the config file's [vm.<id>] sections:
//
//   [vm.111]
//   socket="/run/vgpu/vm111.sock"   # QEMU's ivshmem-doorbell chardev connects here
//   region-size=268435456           # bytes of BAR2, a power of two
//   channels=16                     # guest processes that can use the device at once
//   memory-limit-mb=0               # GPU memory of all its processes together; 0: no limit
//
// Later issues add more per-VM limits (GPUs, share of GPU time) here.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace caf {
class actor_system_config;
}

namespace vgpu {

// The largest scheduling weight (a VM gets at most this many times the
// service of a weight-1 VM on a busy worker).
inline constexpr int64_t kMaxWeight = 100;

struct vm_config {
  std::string id;
  std::string socket_path;
  uint64_t region_size = 256ull << 20;
  uint32_t channels = 16;
  uint64_t memory_limit_bytes = 0;  // memory-limit-mb; 0: no limit (actors/memory_limits.h)
  uint32_t weight = 1;              // its share of a GPU worker's time (actors/worker_loop.cpp)
};

// Reads every [vm.<id>] section. False and `why` on a bad value.
bool read_vm_configs(const caf::actor_system_config& cfg, std::vector<vm_config>* out, std::string* why);

}  // namespace vgpu
