// vgpuDeviceStatus's reply (call 0x00F0): what a guest's libnvidia-ml.so.1
// needs about a GPU that cudaGetDeviceProperties and cudaMemGetInfo do not
// carry. Built by the same compiler on both sides and copied as bytes, like
// every wire struct; the fixed-size strings are NUL-terminated.
//
// Asked for device -1, only the version strings are filled (the system-wide
// part of NVML, which works with no GPU).
#pragma once

#include <cstdint>
#include <type_traits>

namespace vgpu::protocol {

// Which of the optional readings the host could take. A reading without its
// bit is unknown (the guest answers NVML_ERROR_NOT_SUPPORTED for it), never 0.
enum device_status_bits : uint32_t {
  kStatusUtilization = 1u << 0,  // gpu_util_percent, memory_util_percent
  kStatusTemperature = 1u << 1,  // temperature_c
  kStatusPower = 1u << 2,        // power_mw
  kStatusPowerLimit = 1u << 3,   // power_limit_mw
  kStatusFan = 1u << 4,          // fan_percent
  kStatusClocks = 1u << 5,       // sm_clock_mhz, mem_clock_mhz
  kStatusPciIds = 1u << 6,       // pci_device_id, pci_subsystem_id
};

struct device_status {
  char driver_version[80];  // the host driver's version string ("580.65.06"), "" when unknown
  char nvml_version[80];    // the host NVML library's version string, "" when unknown
  uint32_t valid = 0;       // device_status_bits
  uint32_t pci_device_id = 0;     // (PCI device id << 16) | vendor id, as NVML's pciDeviceId
  uint32_t pci_subsystem_id = 0;  // (subsystem id << 16) | subsystem vendor id
  uint32_t gpu_util_percent = 0;
  uint32_t memory_util_percent = 0;
  uint32_t temperature_c = 0;
  uint32_t power_mw = 0;
  uint32_t power_limit_mw = 0;
  uint32_t fan_percent = 0;
  uint32_t sm_clock_mhz = 0;
  uint32_t mem_clock_mhz = 0;
  uint32_t reserved[5] = {};
};
static_assert(std::is_trivially_copyable_v<device_status>);
static_assert(sizeof(device_status) == 224, "device_status layout is part of the wire");

}  // namespace vgpu::protocol

// The name cudart.api uses for it (a ctype there cannot contain '::').
using vgpuDeviceStatusInfo = vgpu::protocol::device_status;
