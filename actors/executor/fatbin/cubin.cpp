#include "actors/executor/fatbin/cubin.h"

#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "actors/executor/fatbin/elf.h"
#include "actors/executor/fatbin/nv_info.h"

namespace vgpu::fatbin {

namespace {

constexpr uint8_t kEntryMark = 0x10;           // st_other of a kernel
constexpr uint8_t kSymbolCudaObject = 13;      // STT_LOPROC: variables in -rdc cubins
constexpr uint32_t kSectionCudaInfo = 0x70000000;  // SHT_LOPROC: .nv.info*
constexpr std::string_view kInfoPrefix = ".nv.info.";
constexpr std::string_view kGlobalSection = ".nv.global";
constexpr std::string_view kConstantPrefix = ".nv.constant";

bool starts_with(std::string_view s, std::string_view prefix) {
  return s.substr(0, prefix.size()) == prefix;
}

enum class space { none, global, constant };

// Where a variable in section `name` lives: .nv.global and .nv.global.*
// (initialised data) are device memory; .nv.constant<N> with N > 0 is a
// module constant bank (bank 0 holds parameters, per kernel).
space space_of(std::string_view name) {
  if (name == kGlobalSection || starts_with(name, std::string(kGlobalSection) + ".")) {
    return space::global;
  }
  if (!starts_with(name, kConstantPrefix)) return space::none;
  const std::string_view bank = name.substr(kConstantPrefix.size());
  if (bank.empty() || bank == "0") return space::none;
  for (const char c : bank) {
    if (c < '0' || c > '9') return space::none;  // .nv.constant2.<kernel> and the like
  }
  return space::constant;
}

class reader {
 public:
  reader(const elf::file& f, module_info* out, std::string* why) : f_(f), out_(out), why_(why) {}

  bool run() {
    for (size_t i = 0; i < f_.sections().size(); ++i) {
      const elf::section& s = f_.sections()[i];
      if (s.type == kSectionCudaInfo && starts_with(s.name, kInfoPrefix)) {
        info_by_kernel_.emplace(s.name.substr(kInfoPrefix.size()), i);
      }
    }
    for (const elf::symbol& y : f_.symbols()) {
      if (y.section == 0) continue;  // undefined: another module's
      bool ok = true;
      if (y.type == elf::kSymbolFunc && (y.other & kEntryMark) != 0) {
        ok = kernel(y);
      } else if (y.type == elf::kSymbolObject || y.type == kSymbolCudaObject) {
        ok = variable(y);
      }
      if (!ok) return false;
    }
    return true;
  }

 private:
  bool fail(std::string msg) {
    *why_ = std::move(msg);
    return false;
  }

  bool kernel(const elf::symbol& y) {
    const std::string name(y.name);
    if (name.empty()) return fail("has a kernel without a name");
    if (!kernel_names_.insert(name).second) return fail("defines kernel " + name + " twice");
    const auto info = info_by_kernel_.find(y.name);
    if (info == info_by_kernel_.end()) {
      return fail("has no .nv.info." + name + " section for kernel " + name);
    }
    const elf::section& s = f_.sections()[info->second];
    kernel_info k;
    k.name = name;
    std::string reason;
    if (!read_kernel_params(f_.bytes(s), static_cast<size_t>(s.size), &k, &reason)) {
      return fail("section .nv.info." + name + " " + reason);
    }
    out_->kernels.push_back(std::move(k));
    return true;
  }

  bool variable(const elf::symbol& y) {
    const elf::section& s = f_.sections()[y.section];
    const space where = space_of(s.name);
    if (where == space::none) return true;  // shared memory, sections of code
    global_info g;
    g.name = std::string(y.name);
    g.size = y.size;
    g.constant = where == space::constant;
    if (g.name.empty()) return fail("has a variable without a name in " + std::string(s.name));
    if (y.value > s.size || y.size > s.size - y.value) {
      return fail("places variable " + g.name + " at " + std::to_string(y.value) + " (+" +
                  std::to_string(y.size) + ") outside its section " + std::string(s.name) +
                  " of " + std::to_string(s.size) + " bytes");
    }
    if (!global_names_.insert(g.name).second) return fail("defines variable " + g.name + " twice");
    out_->globals.push_back(std::move(g));
    return true;
  }

  const elf::file& f_;
  module_info* out_;
  std::string* why_;
  std::unordered_map<std::string_view, size_t> info_by_kernel_;
  std::unordered_set<std::string> kernel_names_;
  std::unordered_set<std::string> global_names_;
};

}  // namespace

bool parse_cubin(const uint8_t* data, size_t size, module_info* out, std::string* why) {
  elf::file f;
  module_info info;
  std::string reason;
  if (!f.open(data, size, &reason) || !reader(f, &info, &reason).run()) {
    if (why) *why = "the cubin " + reason;
    return false;
  }
  *out = std::move(info);
  return true;
}

}  // namespace vgpu::fatbin
