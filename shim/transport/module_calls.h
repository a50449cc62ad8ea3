// Modules, kernels and launches on the wire, shared by libcudart's registry
// (fatbins registered at load) and libcuda's cuModuleLoadData / cuLaunchKernel:
// one upload path, one kernel lookup, one launch encoding.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <driver_types.h>

namespace vgpu::shim {

// A module id for this process's session: the host keys modules by the id the
// guest picks, and both libraries load modules into the one session.
uint64_t next_module_id();

// The size of a module image as cuModuleLoadData receives it: a fatbin
// wrapper (__fatBinC_Wrapper_t: the size of the fatbin it points at), a
// fatbin, a 64-bit ELF cubin, or NUL-terminated PTX (its length with the NUL).
// *bytes is where the image's bytes start (the wrapper's data). 0 when none
// of these (a 32-bit ELF, a wrapper of another version).
uint64_t module_image_size(const void* image, const uint8_t** bytes);

// Sends the image in data-area chunks; the last chunk makes the host load it.
cudaError_t upload_module(uint64_t module, const uint8_t* image, uint64_t size);
cudaError_t unload_module(uint64_t module);

// A kernel's host-issued function id and parameter layout, (offset, size) per parameter.
struct function_info {
  uint64_t function = 0;
  std::vector<std::pair<uint32_t, uint32_t>> layout;
  uint32_t param_bytes = 0;  // end of the last parameter
};
cudaError_t get_function(uint64_t module, const std::string& name, function_info* out);
cudaError_t get_global(uint64_t module, const std::string& name, uint64_t* dptr, uint64_t* bytes);

// A launch as vgpuLaunchKernel carries it. flags: kLaunchCooperative, kLaunchProgrammatic.
inline constexpr uint32_t kLaunchCooperative = 1u << 0;
inline constexpr uint32_t kLaunchProgrammatic = 1u << 1;
inline constexpr uint32_t kMaxParamBlock = 32764;  // CUDA's limit on a kernel's parameters
struct launch_shape {
  uint32_t grid[3] = {1, 1, 1};
  uint32_t block[3] = {1, 1, 1};
  uint32_t shared_mem = 0;
  uint64_t stream = 0;  // the host's stream id (what a cudaStream_t / CUstream holds)
  uint32_t cluster[3] = {0, 0, 0};
  uint32_t flags = 0;
};
// Posts the launch with its packed parameter block (`params`, `size` bytes).
cudaError_t post_launch(uint64_t function, const launch_shape& shape, const void* params, uint32_t size);

}  // namespace vgpu::shim
