#include "actors/vm_config.h"

#include <caf/all.hpp>

#include "protocol/region_layout.h"

namespace vgpu {

bool read_vm_configs(const caf::actor_system_config& cfg, std::vector<vm_config>* out, std::string* why) {
  out->clear();
  const auto vms = caf::get_if<caf::settings>(&caf::content(cfg), "vm");  // a caf::optional copy
  if (!vms) return true;
  for (const auto& [id, value] : *vms) {
    const auto* section = caf::get_if<caf::settings>(&value);
    if (!section) {
      *why = "vm." + id + " must be a section ([vm." + id + "])";
      return false;
    }
    vm_config vm;
    vm.id = id;
    vm.socket_path = caf::get_or(*section, "socket", std::string("/run/vgpu/vm" + id + ".sock"));
    const int64_t size = caf::get_or(*section, "region-size", static_cast<int64_t>(vm.region_size));
    const int64_t channels = caf::get_or(*section, "channels", static_cast<int64_t>(vm.channels));
    const int64_t limit_mb = caf::get_or(*section, "memory-limit-mb", int64_t{0});
    const int64_t weight = caf::get_or(*section, "weight", int64_t{1});
    if (weight < 1 || weight > kMaxWeight) {
      *why = "vm." + id + ".weight must be between 1 and " + std::to_string(kMaxWeight);
      return false;
    }
    if (size <= 0 || !protocol::is_power_of_two(static_cast<uint64_t>(size))) {
      *why = "vm." + id + ".region-size must be a power of two (QEMU's ivshmem refuses others)";
      return false;
    }
    if (channels < 1 || channels > 4096) {
      *why = "vm." + id + ".channels must be between 1 and 4096";
      return false;
    }
    // Up to 2^40 MiB (an exabyte): MiB << 20 never overflows.
    if (limit_mb < 0 || limit_mb > (int64_t{1} << 40)) {
      *why = "vm." + id + ".memory-limit-mb must be 0 (no limit) or a positive number of MiB";
      return false;
    }
    for (const auto& other : *out)
      if (other.socket_path == vm.socket_path) {
        *why = "vm." + id + " and vm." + other.id + " share the socket " + vm.socket_path;
        return false;
      }
    vm.region_size = static_cast<uint64_t>(size);
    vm.channels = static_cast<uint32_t>(channels);
    vm.memory_limit_bytes = static_cast<uint64_t>(limit_mb) << 20;
    vm.weight = static_cast<uint32_t>(weight);
    out->push_back(vm);
  }
  return true;
}

}  // namespace vgpu
