// Live readings: memory (the VM's view, i.e. exactly what the guest's
// cudaMemGetInfo reports), utilization, temperature, power, fan, clocks (the
// host's readings through vgpuDeviceStatus). A reading the host could not
// take is NVML_ERROR_NOT_SUPPORTED, never a made-up number.
#include <cstdint>

#include "shim/nvml/nvml_state.h"

using namespace vgpu::nvml;

extern "C" nvmlReturn_t nvmlDeviceGetMemoryInfo(nvmlDevice_t device, nvmlMemory_t* mem) {
  unsigned int i = 0;
  if (const nvmlReturn_t r = index_of(device, &i); r != NVML_SUCCESS) return r;
  if (mem == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  unsigned long long free = 0, total = 0;
  if (const nvmlReturn_t r = memory(i, &free, &total); r != NVML_SUCCESS) return r;
  mem->total = total;
  mem->free = free;
  mem->used = total - free;
  return NVML_SUCCESS;
}

// NVIDIA's v2 semantics: used + free + reserved == total, and total - reserved
// is what cudaMemGetInfo calls total. The VM's total already excludes what the
// host keeps for itself, so `reserved` is 0 and `total` is the v1 total.
// A wrong struct version: NVIDIA's NVML answers NVML_ERROR_FUNCTION_NOT_FOUND
// (measured on an H100, driver 580.159.04, for versions 0, 1, v1 and v3 of this
// struct), not ARGUMENT_VERSION_MISMATCH; so do we.
extern "C" nvmlReturn_t nvmlDeviceGetMemoryInfo_v2(nvmlDevice_t device, nvmlMemory_v2_t* mem) {
  unsigned int i = 0;
  if (const nvmlReturn_t r = index_of(device, &i); r != NVML_SUCCESS) return r;
  if (mem == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  if (mem->version != nvmlMemory_v2) return NVML_ERROR_FUNCTION_NOT_FOUND;
  unsigned long long free = 0, total = 0;
  if (const nvmlReturn_t r = memory(i, &free, &total); r != NVML_SUCCESS) return r;
  mem->total = total;
  mem->reserved = 0;
  mem->free = free;
  mem->used = total - free;
  return NVML_SUCCESS;
}

namespace {
// The host's status for a device, after the handle and output checks; NOT_SUPPORTED
// when the host lacks every bit of `need`.
nvmlReturn_t status_of(nvmlDevice_t device, const void* out, uint32_t need, vgpuDeviceStatusInfo* s) {
  unsigned int i = 0;
  if (const nvmlReturn_t r = index_of(device, &i); r != NVML_SUCCESS) return r;
  if (out == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  if (const nvmlReturn_t r = host_status(static_cast<int>(i), s); r != NVML_SUCCESS) return r;
  return (s->valid & need) == need ? NVML_SUCCESS : NVML_ERROR_NOT_SUPPORTED;
}
}  // namespace

extern "C" nvmlReturn_t nvmlDeviceGetUtilizationRates(nvmlDevice_t device, nvmlUtilization_t* util) {
  vgpuDeviceStatusInfo s{};
  if (const nvmlReturn_t r = status_of(device, util, vgpu::protocol::kStatusUtilization, &s); r != NVML_SUCCESS) {
    return r;
  }
  util->gpu = s.gpu_util_percent;
  util->memory = s.memory_util_percent;
  return NVML_SUCCESS;
}

extern "C" nvmlReturn_t nvmlDeviceGetTemperature(nvmlDevice_t device, nvmlTemperatureSensors_t sensorType,
                                                 unsigned int* temp) {
  vgpuDeviceStatusInfo s{};
  if (const nvmlReturn_t r = status_of(device, temp, 0, &s); r != NVML_SUCCESS) return r;
  if (sensorType != NVML_TEMPERATURE_GPU) return NVML_ERROR_INVALID_ARGUMENT;
  if (!(s.valid & vgpu::protocol::kStatusTemperature)) return NVML_ERROR_NOT_SUPPORTED;
  *temp = s.temperature_c;
  return NVML_SUCCESS;
}

extern "C" nvmlReturn_t nvmlDeviceGetPowerUsage(nvmlDevice_t device, unsigned int* power) {
  vgpuDeviceStatusInfo s{};
  if (const nvmlReturn_t r = status_of(device, power, vgpu::protocol::kStatusPower, &s); r != NVML_SUCCESS) return r;
  *power = s.power_mw;
  return NVML_SUCCESS;
}

extern "C" nvmlReturn_t nvmlDeviceGetEnforcedPowerLimit(nvmlDevice_t device, unsigned int* limit) {
  vgpuDeviceStatusInfo s{};
  if (const nvmlReturn_t r = status_of(device, limit, vgpu::protocol::kStatusPowerLimit, &s); r != NVML_SUCCESS) {
    return r;
  }
  *limit = s.power_limit_mw;
  return NVML_SUCCESS;
}

extern "C" nvmlReturn_t nvmlDeviceGetPowerManagementLimit(nvmlDevice_t device, unsigned int* limit) {
  return nvmlDeviceGetEnforcedPowerLimit(device, limit);
}

extern "C" nvmlReturn_t nvmlDeviceGetFanSpeed(nvmlDevice_t device, unsigned int* speed) {
  vgpuDeviceStatusInfo s{};
  if (const nvmlReturn_t r = status_of(device, speed, vgpu::protocol::kStatusFan, &s); r != NVML_SUCCESS) return r;
  *speed = s.fan_percent;
  return NVML_SUCCESS;
}

extern "C" nvmlReturn_t nvmlDeviceGetClockInfo(nvmlDevice_t device, nvmlClockType_t type, unsigned int* clock) {
  vgpuDeviceStatusInfo s{};
  if (const nvmlReturn_t r = status_of(device, clock, 0, &s); r != NVML_SUCCESS) return r;
  if (type != NVML_CLOCK_GRAPHICS && type != NVML_CLOCK_SM && type != NVML_CLOCK_MEM && type != NVML_CLOCK_VIDEO) {
    return NVML_ERROR_INVALID_ARGUMENT;
  }
  // The host reports the SM and memory clocks; graphics runs at the SM clock.
  if (!(s.valid & vgpu::protocol::kStatusClocks) || type == NVML_CLOCK_VIDEO) return NVML_ERROR_NOT_SUPPORTED;
  *clock = type == NVML_CLOCK_MEM ? s.mem_clock_mhz : s.sm_clock_mhz;
  return NVML_SUCCESS;
}

// Other processes' use of the GPU (other guests, host programs) is not the
// VM's to see, and a list with only our own would be a wrong answer.
extern "C" nvmlReturn_t nvmlDeviceGetComputeRunningProcesses_v3(nvmlDevice_t device, unsigned int* infoCount,
                                                                nvmlProcessInfo_t* infos) {
  (void)infos;
  unsigned int i = 0;
  if (const nvmlReturn_t r = index_of(device, &i); r != NVML_SUCCESS) return r;
  if (infoCount == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  return NVML_ERROR_NOT_SUPPORTED;
}
