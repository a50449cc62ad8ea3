// vgpuDeviceStatus on the reference executor: the CPU "device" has no driver,
// no sensors and does no work of its own, so only what is honestly known is
// flagged: utilization is 0 (nothing ever runs on it but instant copies and
// recorded launches); temperature, power, fan, clocks and PCI ids stay unknown.
#include <cstdio>

#include <spdlog/spdlog.h>

#include "actors/executor/reference/reference_session.h"
#include "protocol/device_status.h"

namespace vgpu::host::reference {

namespace {
// The version strings say what answers: no NVIDIA driver is involved. NVML's
// version is, in NVML's format, the CUDA major version (13, as this
// executor's cudaDriverGetVersion) and then the driver's.
constexpr const char* kReferenceDriverVersion = "vgpu-reference";
constexpr const char* kReferenceNvmlVersion = "13.vgpu-reference";
}  // namespace

cudaError_t reference_session::on_vgpuDeviceStatus(call_context& ctx, vgpuDeviceStatusInfo* status,
                                                   int32_t device) {
  vgpuDeviceStatusInfo s{};
  std::snprintf(s.driver_version, sizeof s.driver_version, "%s", kReferenceDriverVersion);
  std::snprintf(s.nvml_version, sizeof s.nvml_version, "%s", kReferenceNvmlVersion);
  if (device != -1) {  // -1: the system-wide part only
    if (!device_ok(device)) {
      spdlog::debug("[reference-executor] vgpuDeviceStatus: no device {} (vm={})", device, ctx.vm_id);
      return cudaErrorInvalidDevice;
    }
    s.valid = protocol::kStatusUtilization;
    s.gpu_util_percent = 0;
    s.memory_util_percent = 0;
  }
  *status = s;
  return cudaSuccess;
}

}  // namespace vgpu::host::reference
