// What the NVML entry points share: the init/shutdown count, device handles,
// the host queries and how their CUDA statuses read as NVML ones.
#pragma once

#include <driver_types.h>

#include <string>

#include "protocol/device_status.h"
#include "shim/nvml/nvml_abi.h"

// The handle's target: one per device index, in a table the library owns;
// its position in the table is the index (nvml_state.cpp), nothing is stored.
struct nvmlDevice_st {
  unsigned char unused;
};

namespace vgpu::nvml {

// Most of NVML's devices a guest can name (more GPUs are not reported).
constexpr unsigned int kMaxDevices = 64;

// NVML_SUCCESS while nvmlInit* has been called more often than nvmlShutdown.
nvmlReturn_t require_init();

// The device count the host reports (at most kMaxDevices).
nvmlReturn_t device_count(unsigned int* count);
// The handle for `index` (checked against the host's count).
nvmlReturn_t handle_of(unsigned int index, nvmlDevice_t* out);
// A handle's index: INVALID_ARGUMENT for NULL, foreign or stale handles.
// Also checks initialisation (UNINITIALIZED), so entry points start with it.
nvmlReturn_t index_of(nvmlDevice_t device, unsigned int* index);

// Host queries, as NVML statuses.
nvmlReturn_t properties(unsigned int index, cudaDeviceProp* prop);
nvmlReturn_t host_status(int device, vgpu::protocol::device_status* status);  // -1: system
nvmlReturn_t memory(unsigned int index, unsigned long long* free, unsigned long long* total);

nvmlReturn_t from_cuda(cudaError_t e);

// Copies `s` and its NUL into buf[length]: INVALID_ARGUMENT for NULL,
// INSUFFICIENT_SIZE when it does not fit (nothing written then).
nvmlReturn_t copy_out(const std::string& s, char* buf, unsigned int length);

// "GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx", as NVIDIA formats a UUID.
std::string uuid_text(const cudaDeviceProp& prop);
// The 8-digit-domain and legacy 4-digit-domain PCI addresses.
std::string bus_id_text(const cudaDeviceProp& prop);
std::string legacy_bus_id_text(const cudaDeviceProp& prop);

}  // namespace vgpu::nvml
