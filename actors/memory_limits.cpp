#include "actors/memory_limits.h"

namespace vgpu {

memory_limits::memory_limits(const std::vector<vm_config>& vms, uint64_t local_limit_bytes)
    : local_(std::make_shared<host::memory_budget>(kLocalBudget, local_limit_bytes)) {
  for (const auto& vm : vms) vms_.emplace(vm.id, std::make_shared<host::memory_budget>(vm.id, vm.memory_limit_bytes));
}

std::shared_ptr<host::memory_budget> memory_limits::budget_for(const std::string& vm_id) const {
  const auto it = vms_.find(vm_id);
  return it != vms_.end() ? it->second : local_;
}

namespace {

class limited_executor final : public host::executor {
 public:
  limited_executor(std::unique_ptr<host::executor> inner, std::shared_ptr<const memory_limits> limits)
      : inner_(std::move(inner)), limits_(std::move(limits)) {}

  const char* kind() const override { return inner_->kind(); }
  std::string describe() const override { return inner_->describe(); }
  bool is_gpu() const override { return inner_->is_gpu(); }
  int device_count() const override { return inner_->device_count(); }
  uint64_t bytes_in_use() const override { return inner_->bytes_in_use(); }
  uint64_t memory_limit(const std::string& vm_id) const override {
    const auto b = limits_->budget_for(vm_id);
    return b ? b->limit() : 0;
  }
  std::shared_ptr<void> pin_region(uint8_t* base, uint64_t bytes, std::string* why) override {
    return inner_->pin_region(base, bytes, why);
  }

  std::unique_ptr<host::api_handler> open_session(const host::session_info& info, std::string* why) override {
    host::session_info with_budget = info;
    with_budget.budget = limits_->budget_for(info.vm_id);
    return inner_->open_session(with_budget, why);
  }

 private:
  std::unique_ptr<host::executor> inner_;
  std::shared_ptr<const memory_limits> limits_;
};

}  // namespace

std::unique_ptr<host::executor> make_limited_executor(std::unique_ptr<host::executor> inner,
                                                      std::shared_ptr<const memory_limits> limits) {
  return std::make_unique<limited_executor>(std::move(inner), std::move(limits));
}

}  // namespace vgpu
