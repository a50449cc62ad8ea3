// Which GPUs a VM (or the local processes) may use: [vm.<id>] gpus=[0, 1] and
// mediator.local-gpus=[1], lists of the executor's device ordinals; absent or
// empty: all. The supervisor places a session only on a worker of an allowed
// GPU. The list restricts placement only: the guest still sees every device
// the executor has (cudaGetDeviceCount, ordinals as the host numbers them), and
// each call still runs on the device its message names (protocol::message
// device, the guest thread's current device, 0 unless it called cudaSetDevice).
#pragma once

#include <map>
#include <string>
#include <vector>

namespace caf {
class actor_system_config;
}

namespace vgpu {

struct gpu_access {
  std::vector<int> local;                       // empty: all
  std::map<std::string, std::vector<int>> vms;  // vm id -> ordinals; absent or empty: all
  // The allowed ordinals of a session's vm_id (local-<pid>: the local list).
  const std::vector<int>& allowed(const std::string& vm_id, bool is_vm) const;
};

// Reads the lists and checks every ordinal against device_count. False and
// `why` on a bad list (the mediator then exits 2).
bool read_gpu_access(const caf::actor_system_config& cfg, int device_count, gpu_access* out, std::string* why);

}  // namespace vgpu
