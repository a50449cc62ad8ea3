// vgpuDeviceStatus on a real GPU. Answered without the session's CUDA context
// (cuDeviceGet and cuDeviceGetPCIBusId need none), so a guest that only asks
// NVML (Ollama's GPU discovery) never makes the host create one. Live
// readings come from the host's NVML when it is there (host_nvml), the PCI
// ids from sysfs, the driver version from NVML or else the kernel module.
#include <cctype>
#include <cstdio>
#include <fstream>
#include <string>

#include <spdlog/spdlog.h>

#include "actors/executor/cuda/cuda_errors.h"
#include "actors/executor/cuda/cuda_session.h"
#include "actors/executor/cuda/host_nvml.h"
#include "protocol/device_status.h"

namespace vgpu::host::cuda {

namespace {

// The first line of a small text file, "" when it cannot be read.
std::string first_line(const std::string& path) {
  std::ifstream f(path);
  std::string line;
  if (!f || !std::getline(f, line)) return {};
  return line;
}

// A sysfs hex attribute ("0x10de"); false when missing or malformed.
bool read_hex(const std::string& path, uint32_t* out) {
  const std::string s = first_line(path);
  unsigned v = 0;
  if (std::sscanf(s.c_str(), "%x", &v) != 1) return false;
  *out = v;
  return true;
}

void copy_string(char* dst, size_t cap, const std::string& src) {
  std::snprintf(dst, cap, "%s", src.c_str());
}

// The kernel module's version when NVML is absent ("580.65.06\n").
std::string module_driver_version() { return first_line("/sys/module/nvidia/version"); }

// CUDA's "0000:65:00.0" for `dev`, lower-cased as sysfs names it; "" on failure.
std::string bus_id_of(CUdevice dev) {
  char bus[32] = {};
  if (cuDeviceGetPCIBusId(bus, sizeof bus, dev) != CUDA_SUCCESS) return {};
  std::string id = bus;
  for (char& ch : id) ch = static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
  return id;
}

void fill_versions(vgpuDeviceStatusInfo* s) {
  const host_nvml& nvml = host_nvml::get();
  std::string driver = nvml.driver_version();
  if (driver.empty()) driver = module_driver_version();
  std::string nv = nvml.nvml_version();
  if (nv.empty() && !driver.empty()) {
    // NVML's own format: the CUDA major version, then the driver version.
    int cuda = 0;
    if (cuDriverGetVersion(&cuda) == CUDA_SUCCESS) nv = std::to_string(cuda / 1000) + "." + driver;
  }
  copy_string(s->driver_version, sizeof s->driver_version, driver);
  copy_string(s->nvml_version, sizeof s->nvml_version, nv);
}

}  // namespace

cudaError_t cuda_session::on_vgpuDeviceStatus(call_context& c, vgpuDeviceStatusInfo* status,
                                              int32_t device) {
  vgpuDeviceStatusInfo s{};
  fill_versions(&s);
  if (device == -1) {  // the system-wide part only
    *status = s;
    return cudaSuccess;
  }
  if (!state_->device_ok(device)) return cudaErrorInvalidDevice;
  CUdevice dev = 0;
  if (const cudaError_t st = check(cuDeviceGet(&dev, device), "cuDeviceGet", c); st != cudaSuccess) {
    return st;
  }
  const std::string bus_id = bus_id_of(dev);
  if (bus_id.empty()) return check(CUDA_ERROR_INVALID_DEVICE, "cuDeviceGetPCIBusId", c);

  const std::string sys = "/sys/bus/pci/devices/" + bus_id + "/";
  uint32_t vendor = 0, dev_id = 0, sub_vendor = 0, sub_dev = 0;
  if (read_hex(sys + "vendor", &vendor) && read_hex(sys + "device", &dev_id)) {
    s.valid |= protocol::kStatusPciIds;
    s.pci_device_id = (dev_id << 16) | vendor;
    if (read_hex(sys + "subsystem_vendor", &sub_vendor) && read_hex(sys + "subsystem_device", &sub_dev)) {
      s.pci_subsystem_id = (sub_dev << 16) | sub_vendor;
    }
  }

  host_gpu_readings r;
  if (host_nvml::get().read(bus_id, &r)) {
    if (r.has_utilization) {
      s.valid |= protocol::kStatusUtilization;
      s.gpu_util_percent = r.gpu_util;
      s.memory_util_percent = r.mem_util;
    }
    if (r.has_temperature) {
      s.valid |= protocol::kStatusTemperature;
      s.temperature_c = r.temperature_c;
    }
    if (r.has_power) {
      s.valid |= protocol::kStatusPower;
      s.power_mw = r.power_mw;
    }
    if (r.has_power_limit) {
      s.valid |= protocol::kStatusPowerLimit;
      s.power_limit_mw = r.power_limit_mw;
    }
    if (r.has_fan) {
      s.valid |= protocol::kStatusFan;
      s.fan_percent = r.fan_percent;
    }
    if (r.has_clocks) {
      s.valid |= protocol::kStatusClocks;
      s.sm_clock_mhz = r.sm_clock_mhz;
      s.mem_clock_mhz = r.mem_clock_mhz;
    }
  } else {
    spdlog::debug("[cuda-executor] vgpuDeviceStatus: no NVML readings for GPU {} ({}) (vm={})",
                  device, bus_id, c.vm_id);
  }
  *status = s;
  return cudaSuccess;
}

// The total is the driver's (cuDeviceTotalMem, what cuMemGetInfo reports once
// the context exists and what cudaGetDeviceProperties says), so it never
// changes under the guest; NVML's own total also counts memory the driver
// reserves. Free is NVML's, which counts every process's use, capped at that.
bool cuda_session::memory_without_context(uint64_t* free, uint64_t* total) const {
  CUdevice dev = 0;
  if (cuDeviceGet(&dev, device_) != CUDA_SUCCESS) return false;
  size_t driver_total = 0;
  if (cuDeviceTotalMem(&driver_total, dev) != CUDA_SUCCESS) return false;
  const std::string bus_id = bus_id_of(dev);
  uint64_t nvml_free = 0;
  uint64_t nvml_total = 0;
  if (bus_id.empty() || !host_nvml::get().memory(bus_id, &nvml_free, &nvml_total)) return false;
  *total = driver_total;
  *free = nvml_free < driver_total ? nvml_free : driver_total;
  return true;
}

}  // namespace vgpu::host::cuda
