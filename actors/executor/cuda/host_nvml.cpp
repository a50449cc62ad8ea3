#include "actors/executor/cuda/host_nvml.h"

#include <dlfcn.h>

#include <spdlog/spdlog.h>

namespace vgpu::host::cuda {

namespace {
// The few NVML types and values used here (NVML's ABI; no nvml.h on build
// machines). Every function returns nvmlReturn_t, 0 = success.
using nvml_device = void*;
struct nvml_utilization {
  unsigned gpu;
  unsigned memory;
};
struct nvml_memory {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};
constexpr int kNvmlSuccess = 0;
constexpr int kNvmlTemperatureGpu = 0;
constexpr int kNvmlClockSm = 1;
constexpr int kNvmlClockMem = 2;
constexpr unsigned kNvmlVersionBuffer = 80;
}  // namespace

struct host_nvml::api {
  int (*init)() = nullptr;
  int (*shutdown)() = nullptr;
  int (*driver_version)(char*, unsigned) = nullptr;
  int (*nvml_version)(char*, unsigned) = nullptr;
  int (*by_bus_id)(const char*, nvml_device*) = nullptr;
  int (*utilization)(nvml_device, nvml_utilization*) = nullptr;
  int (*memory)(nvml_device, nvml_memory*) = nullptr;
  int (*temperature)(nvml_device, int, unsigned*) = nullptr;
  int (*power)(nvml_device, unsigned*) = nullptr;
  int (*power_limit)(nvml_device, unsigned*) = nullptr;
  int (*fan)(nvml_device, unsigned*) = nullptr;
  int (*clock)(nvml_device, int, unsigned*) = nullptr;
};

namespace {
template <typename F>
void resolve(void* lib, const char* name, F* out) {
  *out = reinterpret_cast<F>(dlsym(lib, name));
}
}  // namespace

host_nvml& host_nvml::get() {
  static host_nvml instance;
  return instance;
}

host_nvml::host_nvml() : fn_(std::make_unique<api>()) {
  lib_ = dlopen("libnvidia-ml.so.1", RTLD_NOW | RTLD_LOCAL);
  if (lib_ == nullptr) {
    spdlog::info("[cuda-executor] no host libnvidia-ml.so.1 ({}): NVML readings (utilization, "
                 "temperature, power) are reported as not supported",
                 dlerror());
    return;
  }
  resolve(lib_, "nvmlInit_v2", &fn_->init);
  resolve(lib_, "nvmlShutdown", &fn_->shutdown);
  resolve(lib_, "nvmlSystemGetDriverVersion", &fn_->driver_version);
  resolve(lib_, "nvmlSystemGetNVMLVersion", &fn_->nvml_version);
  resolve(lib_, "nvmlDeviceGetHandleByPciBusId_v2", &fn_->by_bus_id);
  resolve(lib_, "nvmlDeviceGetUtilizationRates", &fn_->utilization);
  resolve(lib_, "nvmlDeviceGetMemoryInfo", &fn_->memory);
  resolve(lib_, "nvmlDeviceGetTemperature", &fn_->temperature);
  resolve(lib_, "nvmlDeviceGetPowerUsage", &fn_->power);
  resolve(lib_, "nvmlDeviceGetEnforcedPowerLimit", &fn_->power_limit);
  resolve(lib_, "nvmlDeviceGetFanSpeed", &fn_->fan);
  resolve(lib_, "nvmlDeviceGetClockInfo", &fn_->clock);
  if (fn_->init == nullptr || fn_->shutdown == nullptr || fn_->by_bus_id == nullptr) {
    spdlog::warn("[cuda-executor] host libnvidia-ml.so.1 lacks nvmlInit_v2/nvmlShutdown/"
                 "nvmlDeviceGetHandleByPciBusId_v2: not used");
    return;
  }
  if (const int r = fn_->init(); r != kNvmlSuccess) {
    spdlog::warn("[cuda-executor] host nvmlInit_v2 failed ({}): NVML readings not available", r);
    return;
  }
  ok_ = true;
}

host_nvml::~host_nvml() {
  if (ok_) fn_->shutdown();
  // The library stays mapped: NVML may have left threads or handlers behind
  // that exit-time code could still reach.
}

std::string host_nvml::driver_version() const {
  char buf[kNvmlVersionBuffer] = {};
  if (!ok_ || fn_->driver_version == nullptr || fn_->driver_version(buf, sizeof buf) != kNvmlSuccess) {
    return {};
  }
  return buf;
}

std::string host_nvml::nvml_version() const {
  char buf[kNvmlVersionBuffer] = {};
  if (!ok_ || fn_->nvml_version == nullptr || fn_->nvml_version(buf, sizeof buf) != kNvmlSuccess) {
    return {};
  }
  return buf;
}

bool host_nvml::read(const std::string& bus_id, host_gpu_readings* out) const {
  if (!ok_) return false;
  nvml_device dev = nullptr;
  if (fn_->by_bus_id(bus_id.c_str(), &dev) != kNvmlSuccess) return false;
  host_gpu_readings r;
  nvml_utilization u{};
  if (fn_->utilization && fn_->utilization(dev, &u) == kNvmlSuccess) {
    r.has_utilization = true;
    r.gpu_util = u.gpu;
    r.mem_util = u.memory;
  }
  unsigned v = 0;
  if (fn_->temperature && fn_->temperature(dev, kNvmlTemperatureGpu, &v) == kNvmlSuccess) {
    r.has_temperature = true;
    r.temperature_c = v;
  }
  if (fn_->power && fn_->power(dev, &v) == kNvmlSuccess) {
    r.has_power = true;
    r.power_mw = v;
  }
  if (fn_->power_limit && fn_->power_limit(dev, &v) == kNvmlSuccess) {
    r.has_power_limit = true;
    r.power_limit_mw = v;
  }
  if (fn_->fan && fn_->fan(dev, &v) == kNvmlSuccess) {
    r.has_fan = true;
    r.fan_percent = v;
  }
  unsigned sm = 0;
  unsigned mem = 0;
  if (fn_->clock && fn_->clock(dev, kNvmlClockSm, &sm) == kNvmlSuccess &&
      fn_->clock(dev, kNvmlClockMem, &mem) == kNvmlSuccess) {
    r.has_clocks = true;
    r.sm_clock_mhz = sm;
    r.mem_clock_mhz = mem;
  }
  *out = r;
  return true;
}

bool host_nvml::memory(const std::string& bus_id, uint64_t* free, uint64_t* total) const {
  if (!ok_ || fn_->memory == nullptr) return false;
  nvml_device dev = nullptr;
  if (fn_->by_bus_id(bus_id.c_str(), &dev) != kNvmlSuccess) return false;
  nvml_memory m{};
  if (fn_->memory(dev, &m) != kNvmlSuccess) return false;
  *free = m.free;
  *total = m.total;
  return true;
}

}  // namespace vgpu::host::cuda
