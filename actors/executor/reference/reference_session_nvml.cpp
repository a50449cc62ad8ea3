// vgpuDeviceStatus on the reference executor: the CPU "device" has no driver,
// no sensors and does no work of its own, so only what is honestly known is
// flagged: utilization is 0 (nothing ever runs on it but instant copies and
// recorded launches); temperature, power, fan and clocks stay unknown.
#include <cstdio>
#include <cstring>

#include <spdlog/spdlog.h>

#include "actors/executor/reference/reference_session.h"
#include "protocol/device_status.h"

namespace vgpu::host::reference {

namespace {
// The version strings say what answers: no NVIDIA driver is involved.
constexpr const char* kReferenceDriverVersion = "vgpu-reference";
}  // namespace

cudaError_t reference_session::on_vgpuDeviceStatus(call_context& ctx, vgpuDeviceStatusInfo* status,
                                                   int32_t device) {
  if (device == -1) {  // the system-wide part only
    vgpuDeviceStatusInfo sys{};
    std::snprintf(sys.driver_version, sizeof sys.driver_version, "%s", kReferenceDriverVersion);
    std::snprintf(sys.nvml_version, sizeof sys.nvml_version, "13.%s", kReferenceDriverVersion);
    *status = sys;
    return cudaSuccess;
  }
  if (!device_ok(device)) {
    spdlog::debug("[reference-executor] vgpuDeviceStatus: no device {} (vm={})", device, ctx.vm_id);
    return cudaErrorInvalidDevice;
  }
  vgpuDeviceStatusInfo s{};
  std::snprintf(s.driver_version, sizeof s.driver_version, "%s", kReferenceDriverVersion);
  // NVML's format: the CUDA major version (13, as cudaDriverGetVersion), then the driver's.
  std::snprintf(s.nvml_version, sizeof s.nvml_version, "13.%s", kReferenceDriverVersion);
  s.valid = protocol::kStatusUtilization;
  s.gpu_util_percent = 0;
  s.memory_util_percent = 0;
  *status = s;
  return cudaSuccess;
}

}  // namespace vgpu::host::reference
