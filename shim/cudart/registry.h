// What a program registered at load time (its fatbins, kernels and device
// variables), and the lazy work that makes them usable: a fatbin goes to the
// host once per session, at the first use of anything in it; a kernel's
// function id and parameter layout are fetched once and cached, so a launch
// packs its arguments without a round trip.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <driver_types.h>

namespace vgpu::shim {

struct fat_module;

struct kernel_entry {
  fat_module* module = nullptr;
  std::string name;  // mangled device name
  // Filled once by resolve_kernel().
  bool resolved = false;
  uint64_t function = 0;
  std::vector<std::pair<uint32_t, uint32_t>> layout;  // (offset, size) per parameter
  uint32_t param_bytes = 0;
};

struct var_entry {
  fat_module* module = nullptr;
  std::string name;
  size_t size = 0;
  bool resolved = false;
  uint64_t dptr = 0;
  uint64_t bytes = 0;
};

// The kernel a host stub or a cudaKernel_t stands for; nullptr if unknown.
kernel_entry* find_kernel(const void* func);
var_entry* find_var(const void* symbol);

// The host stub (what the program passes as `func`) of the resolved kernel
// with this host function id, and its entry; nullptr if none (graph nodes).
const void* host_function_of(uint64_t function, kernel_entry** entry);

// Makes sure the kernel's module is on the host and its layout is known.
cudaError_t resolve_kernel(kernel_entry* k);
cudaError_t resolve_var(var_entry* v);

}  // namespace vgpu::shim
