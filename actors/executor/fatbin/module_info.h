// What the reference executor learns from a module image without running it:
// each kernel's parameter layout (as cuFuncGetParamInfo reports it) and each
// module-scope variable the guest may ask for by name.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vgpu::fatbin {

// One kernel parameter inside the launch's parameter block.
struct param_slot {
  uint32_t offset = 0;
  uint32_t size = 0;
};

struct kernel_info {
  std::string name;  // the mangled name, as in the PTX `.entry`
  std::vector<param_slot> params;
  // Bytes of the parameter block: last offset + last size, 0 without params.
  uint32_t param_bytes = 0;
};

struct global_info {
  std::string name;
  uint64_t size = 0;
  bool constant = false;  // `.const` rather than `.global`
};

struct module_info {
  std::vector<kernel_info> kernels;
  std::vector<global_info> globals;
  // Which entry of the fatbin this was read from ("compute_90 PTX", "sm_90
  // cubin"), for the log: layouts of over-aligned parameters depend on it.
  std::string source;
};

// CUDA caps a kernel's parameter block at 32764 bytes (Volta and later, CUDA
// 12.1+); PTX declaring more is refused, which also bounds what one recorded
// launch can hold.
inline constexpr uint32_t kMaxParamBytes = 32764;

}  // namespace vgpu::fatbin
