#include "actors/gpu_access.h"

#include <algorithm>

#include <caf/all.hpp>

namespace vgpu {

namespace {
// A list of ordinals, or one ordinal. False on another type or a bad ordinal.
bool read_list(const caf::config_value* v, const std::string& key, int device_count, std::vector<int>* out,
               std::string* why) {
  out->clear();
  if (!v) return true;
  std::vector<int64_t> raw;
  if (auto one = caf::get_if<int64_t>(v)) {
    raw.push_back(*one);
  } else if (auto list = caf::get_if<caf::config_value::list>(v)) {
    for (const auto& x : *list) {
      auto n = caf::get_if<int64_t>(&x);
      if (!n) {
        *why = key + " must be a list of device ordinals, e.g. [0, 1]";
        return false;
      }
      raw.push_back(*n);
    }
  } else {
    *why = key + " must be a list of device ordinals, e.g. [0, 1]";
    return false;
  }
  for (int64_t n : raw) {
    if (n < 0 || n >= device_count) {
      *why = key + " names GPU " + std::to_string(n) + ", but the executor has " + std::to_string(device_count) +
             " device(s) (ordinals 0.." + std::to_string(device_count - 1) + ")";
      return false;
    }
    if (std::find(out->begin(), out->end(), static_cast<int>(n)) == out->end()) out->push_back(static_cast<int>(n));
  }
  std::sort(out->begin(), out->end());
  return true;
}
}  // namespace

const std::vector<int>& gpu_access::allowed(const std::string& vm_id, bool is_vm) const {
  if (!is_vm) return local;
  static const std::vector<int> all;
  auto it = vms.find(vm_id);
  return it == vms.end() ? all : it->second;
}

bool read_gpu_access(const caf::actor_system_config& cfg, int device_count, gpu_access* out, std::string* why) {
  *out = gpu_access{};
  const auto& content = caf::content(cfg);
  if (auto mediator = caf::get_if<caf::settings>(&content, "mediator")) {
    auto it = mediator->find("local-gpus");
    if (!read_list(it == mediator->end() ? nullptr : &it->second, "mediator.local-gpus", device_count, &out->local,
                   why))
      return false;
  }
  if (auto vms = caf::get_if<caf::settings>(&content, "vm")) {
    for (const auto& [id, value] : *vms) {
      const auto* section = caf::get_if<caf::settings>(&value);
      if (!section) continue;  // read_vm_configs reports it
      auto it = section->find("gpus");
      std::vector<int> list;
      if (!read_list(it == section->end() ? nullptr : &it->second, "vm." + id + ".gpus", device_count, &list, why))
        return false;
      if (!list.empty()) out->vms[id] = std::move(list);
    }
  }
  return true;
}

}  // namespace vgpu
