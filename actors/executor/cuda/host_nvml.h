// The host's own libnvidia-ml.so.1, opened with dlopen() when present: the
// cuda executor asks it for what the driver API cannot say (utilization,
// temperature, power, the driver's version string). The mediator must run
// without it (containers often lack it), so every reading is optional.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

namespace vgpu::host::cuda {

// Readings for one GPU; a field is set only when NVML answered it.
struct host_gpu_readings {
  bool has_utilization = false;
  uint32_t gpu_util = 0;
  uint32_t mem_util = 0;
  bool has_temperature = false;
  uint32_t temperature_c = 0;
  bool has_power = false;
  uint32_t power_mw = 0;
  bool has_power_limit = false;
  uint32_t power_limit_mw = 0;
  bool has_fan = false;
  uint32_t fan_percent = 0;
  bool has_clocks = false;
  uint32_t sm_clock_mhz = 0;
  uint32_t mem_clock_mhz = 0;
};

class host_nvml {
 public:
  // The process's one instance: opened and initialised on first use, shut
  // down and closed at exit. Thread-safe (NVML itself is).
  static host_nvml& get();

  bool available() const { return ok_; }
  // "" when NVML is not there.
  std::string driver_version() const;
  std::string nvml_version() const;
  // The GPU at PCI address `bus_id` ("0000:65:00.0"); NVML's own device
  // numbering may differ from CUDA's (CUDA_VISIBLE_DEVICES), the address
  // does not. False when NVML is missing or does not know the GPU.
  bool read(const std::string& bus_id, host_gpu_readings* out) const;
  // The GPU's memory as NVML counts it (all processes); false when unknown.
  bool memory(const std::string& bus_id, uint64_t* free, uint64_t* total) const;

  host_nvml(const host_nvml&) = delete;
  host_nvml& operator=(const host_nvml&) = delete;

 private:
  host_nvml();
  ~host_nvml();

  struct api;  // the resolved entry points (host_nvml.cpp)
  void* lib_ = nullptr;
  std::unique_ptr<api> fn_;
  bool ok_ = false;
};

}  // namespace vgpu::host::cuda
