// The guest's side of the driver API's modules, libraries and functions
// (CUmodule, CUlibrary, CUfunction, CUkernel): what the host loaded for them
// and the parameter layout a launch packs by. Handles are pointers to these
// objects, checked against the live set before use, so a stale or forged
// handle is an error, never a dereference.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <utility>
#include <vector>

#include <cuda.h>

namespace vgpu::shim {

struct drv_module;

struct drv_function {
  drv_module* module = nullptr;
  std::string name;
  uint64_t function = 0;  // host-issued id
  std::vector<std::pair<uint32_t, uint32_t>> layout;  // (offset, size) per parameter
  uint32_t param_bytes = 0;
};

struct drv_module {
  uint64_t id = 0;  // the session's module id (next_module_id())
  std::unordered_map<std::string, std::unique_ptr<drv_function>> functions;  // by name, fetched once
  std::vector<uint64_t> globals;  // device ranges of its variables (shim/transport/device_ranges.h)
};

// A CUlibrary: one module in the session's one context.
struct drv_library {
  drv_module* module = nullptr;
};

// Loads an image (fatbin wrapper, fatbin, cubin or PTX) as a new module.
CUresult load_module(const void* image, drv_module** out);
CUresult unload_module(drv_module* m);
// The function `name` of a live module, fetched from the host on first use.
CUresult module_function(drv_module* m, const char* name, drv_function** out);

// nullptr for a handle that is not live.
drv_module* live_module(CUmodule m);
drv_function* live_function(CUfunction f);
drv_library* live_library(CUlibrary l);

CUresult add_library(drv_module* m, drv_library** out);
CUresult remove_library(drv_library* l);

}  // namespace vgpu::shim
