// Per-VM GPU memory limits: one memory_budget per [vm.<id>] section
// (memory-limit-mb) and one for all local processes together
// ([mediator] local-memory-limit-mb), the local socket being one tenant as a
// VM's socket is. limited_executor hands each new session its VM's budget,
// so every executor enforces the limits without the worker knowing of them.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "actors/executor/executor.h"
#include "actors/vm_config.h"

namespace vgpu {

// The budget key of local sessions (their vm_id is local-<pid>).
inline constexpr const char* kLocalBudget = "local";

class memory_limits {
 public:
  memory_limits(const std::vector<vm_config>& vms, uint64_t local_limit_bytes);
  // The budget of the VM `vm_id` names; every other id (local-<pid>) shares the local one.
  std::shared_ptr<host::memory_budget> budget_for(const std::string& vm_id) const;
  // Every budget (the VMs', then the local one), e.g. for metrics and vgpuctl:
  // memory used and limit per VM are budget->used() and budget->limit().
  template <typename F>
  void for_each(F&& f) const {
    for (const auto& [id, b] : vms_) f(*b);
    f(*local_);
  }

 private:
  std::map<std::string, std::shared_ptr<host::memory_budget>> vms_;
  std::shared_ptr<host::memory_budget> local_;
};

// Wraps the chosen executor: each session opened gets its VM's budget;
// everything else is forwarded unchanged.
std::unique_ptr<host::executor> make_limited_executor(std::unique_ptr<host::executor> inner,
                                                      std::shared_ptr<const memory_limits> limits);

}  // namespace vgpu
