// Initialisation counting, handles and status mapping for the NVML shim.
#include "shim/nvml/nvml_state.h"

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>

#include "guest_remote.h"
#include "shim/transport/guest_call.h"

namespace vgpu::nvml {
namespace {

std::mutex g_mutex;
unsigned long g_init_count = 0;  // nvmlInit* calls not yet matched by nvmlShutdown
nvmlDevice_st g_devices[kMaxDevices];  // a handle is the address of its index's entry

// Reaching the mediator is what initialising means, as for cuInit.
nvmlReturn_t start(unsigned int flags) {
  if ((flags & ~(NVML_INIT_FLAG_NO_GPUS | NVML_INIT_FLAG_NO_ATTACH)) != 0) return NVML_ERROR_INVALID_ARGUMENT;
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_init_count == 0) {
    int count = 0;
    const cudaError_t st = remote::cudaGetDeviceCount(&count);
    if (st != cudaSuccess) return from_cuda(st);
  }
  ++g_init_count;
  return NVML_SUCCESS;
}

nvmlReturn_t stop() {
  std::lock_guard<std::mutex> lock(g_mutex);
  if (g_init_count == 0) return NVML_ERROR_UNINITIALIZED;
  --g_init_count;
  return NVML_SUCCESS;
}

}  // namespace

nvmlReturn_t require_init() {
  std::lock_guard<std::mutex> lock(g_mutex);
  return g_init_count > 0 ? NVML_SUCCESS : NVML_ERROR_UNINITIALIZED;
}

nvmlReturn_t from_cuda(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return NVML_SUCCESS;
    case cudaErrorInvalidDevice:
    case cudaErrorInvalidValue: return NVML_ERROR_INVALID_ARGUMENT;
    case cudaErrorNotSupported: return NVML_ERROR_NOT_SUPPORTED;
    case cudaErrorMemoryAllocation: return NVML_ERROR_MEMORY;
    // No mediator to reach: to NVML, no driver.
    case cudaErrorInsufficientDriver:
    case cudaErrorNoDevice:
    case cudaErrorInitializationError:
    case cudaErrorDevicesUnavailable:
    case cudaErrorSystemNotReady: return NVML_ERROR_DRIVER_NOT_LOADED;
    default: return NVML_ERROR_UNKNOWN;
  }
}

nvmlReturn_t device_count(unsigned int* count) {
  int n = 0;
  if (const cudaError_t st = remote::cudaGetDeviceCount(&n); st != cudaSuccess) return from_cuda(st);
  *count = n < 0 ? 0u : (static_cast<unsigned int>(n) > kMaxDevices ? kMaxDevices : static_cast<unsigned int>(n));
  return NVML_SUCCESS;
}

nvmlReturn_t handle_of(unsigned int index, nvmlDevice_t* out) {
  unsigned int count = 0;
  if (const nvmlReturn_t r = device_count(&count); r != NVML_SUCCESS) return r;
  if (index >= count) return NVML_ERROR_INVALID_ARGUMENT;
  *out = &g_devices[index];
  return NVML_SUCCESS;
}

nvmlReturn_t index_of(nvmlDevice_t device, unsigned int* index) {
  if (const nvmlReturn_t r = require_init(); r != NVML_SUCCESS) return r;
  // Only pointers into our own table are handles (compared as addresses, so
  // a forged pointer is never dereferenced).
  const auto p = reinterpret_cast<uintptr_t>(device);
  const auto first = reinterpret_cast<uintptr_t>(&g_devices[0]);
  const auto end = reinterpret_cast<uintptr_t>(&g_devices[kMaxDevices]);
  if (p < first || p >= end || (p - first) % sizeof(nvmlDevice_st) != 0) return NVML_ERROR_INVALID_ARGUMENT;
  const auto i = static_cast<unsigned int>((p - first) / sizeof(nvmlDevice_st));
  unsigned int count = 0;
  if (const nvmlReturn_t r = device_count(&count); r != NVML_SUCCESS) return r;
  if (i >= count) return NVML_ERROR_INVALID_ARGUMENT;
  *index = i;
  return NVML_SUCCESS;
}

nvmlReturn_t properties(unsigned int index, cudaDeviceProp* prop) {
  return from_cuda(remote::cudaGetDeviceProperties(prop, static_cast<int>(index)));
}

nvmlReturn_t host_status(int device, vgpu::protocol::device_status* status) {
  return from_cuda(remote::vgpuDeviceStatus(status, device));
}

nvmlReturn_t memory(unsigned int index, unsigned long long* free, unsigned long long* total) {
  // cudaMemGetInfo answers for the calling thread's device (every message
  // carries it): ask as `index`, then put the thread's device back.
  const int previous = shim::thread_device();
  shim::set_thread_device(static_cast<int>(index));
  size_t f = 0;
  size_t t = 0;
  const cudaError_t st = remote::cudaMemGetInfo(&f, &t);
  shim::set_thread_device(previous);
  if (st != cudaSuccess) return from_cuda(st);
  *free = f;
  *total = t;
  return NVML_SUCCESS;
}

nvmlReturn_t copy_out(const std::string& s, char* buf, unsigned int length) {
  if (buf == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  if (s.size() + 1 > length) return NVML_ERROR_INSUFFICIENT_SIZE;
  std::memcpy(buf, s.c_str(), s.size() + 1);
  return NVML_SUCCESS;
}

std::string uuid_text(const cudaDeviceProp& prop) {
  const auto* b = reinterpret_cast<const unsigned char*>(prop.uuid.bytes);
  char out[64];
  std::snprintf(out, sizeof out,
                "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", b[0], b[1],
                b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14], b[15]);
  return out;
}

std::string bus_id_text(const cudaDeviceProp& prop) {
  char out[NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE];
  std::snprintf(out, sizeof out, "%08X:%02X:%02X.0", static_cast<unsigned>(prop.pciDomainID),
                static_cast<unsigned>(prop.pciBusID), static_cast<unsigned>(prop.pciDeviceID));
  return out;
}

std::string legacy_bus_id_text(const cudaDeviceProp& prop) {
  char out[NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE];
  std::snprintf(out, sizeof out, "%04X:%02X:%02X.0", static_cast<unsigned>(prop.pciDomainID) & 0xffffu,
                static_cast<unsigned>(prop.pciBusID), static_cast<unsigned>(prop.pciDeviceID));
  return out;
}

}  // namespace vgpu::nvml

// --- initialisation: counted, as NVIDIA's (each nvmlInit* needs its nvmlShutdown) ---

extern "C" nvmlReturn_t nvmlInitWithFlags(unsigned int flags) { return vgpu::nvml::start(flags); }
extern "C" nvmlReturn_t nvmlInit_v2(void) { return vgpu::nvml::start(0); }
extern "C" nvmlReturn_t nvmlInit(void) { return vgpu::nvml::start(0); }

extern "C" nvmlReturn_t nvmlShutdown(void) { return vgpu::nvml::stop(); }
