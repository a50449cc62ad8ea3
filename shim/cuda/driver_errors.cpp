// Driver error names and texts, the status mapping, and the unsupported answer.
#include <mutex>
#include <set>
#include <string>

#include <cuda.h>

#include "shim/cuda/driver_common.h"
#include "shim/cuda/driver_unsupported.h"
#include "shim/transport/guest_log.h"

namespace vgpu::shim {

namespace {
struct error_name {
  int value;
  const char* name;
};
// Generated from NVIDIA's cuda.h (shim/cudart/gen_error_names.py --driver).
constexpr error_name kNames[] = {
#include "cuda_driver_error_names.inc"
};

struct error_text {
  CUresult value;
  const char* text;
};
constexpr error_text kTexts[] = {
    {CUDA_SUCCESS, "no error"},
    {CUDA_ERROR_INVALID_VALUE, "invalid argument"},
    {CUDA_ERROR_OUT_OF_MEMORY, "out of memory"},
    {CUDA_ERROR_NOT_INITIALIZED, "initialization error"},
    {CUDA_ERROR_NO_DEVICE, "no CUDA-capable device is detected"},
    {CUDA_ERROR_INVALID_DEVICE, "invalid device ordinal"},
    {CUDA_ERROR_INVALID_CONTEXT, "invalid device context"},
    {CUDA_ERROR_INVALID_HANDLE, "invalid resource handle"},
    {CUDA_ERROR_NOT_FOUND, "named symbol not found"},
    {CUDA_ERROR_NOT_READY, "device not ready"},
    {CUDA_ERROR_DEVICE_UNAVAILABLE, "CUDA-capable device(s) is/are busy or unavailable"},
    {CUDA_ERROR_NOT_SUPPORTED, "operation not supported"},
};
}  // namespace

CUresult to_cu(cudaError_t e) {
  switch (e) {
    case cudaErrorInvalidDeviceFunction: return CUDA_ERROR_NOT_FOUND;
    case cudaErrorInvalidMemcpyDirection: return CUDA_ERROR_INVALID_VALUE;
    case cudaErrorInvalidSymbol: return CUDA_ERROR_NOT_FOUND;
    default: return static_cast<CUresult>(e);  // the shared numbering
  }
}

int driver_not_supported(const char* name) {
  static std::mutex m;
  static auto* seen = new std::set<std::string>;
  std::lock_guard<std::mutex> lock(m);
  if (seen->insert(name).second)
    VGPU_GLOG(warn, "[cuda-transport] %s (driver API) is not supported by vgpu yet: returning CUDA_ERROR_NOT_SUPPORTED",
              name);
  return CUDA_ERROR_NOT_SUPPORTED;
}

}  // namespace vgpu::shim

extern "C" CUresult cuGetErrorName(CUresult error, const char** pStr) {
  if (!pStr) return CUDA_ERROR_INVALID_VALUE;
  for (const auto& n : vgpu::shim::kNames)
    if (n.value == static_cast<int>(error)) {
      *pStr = n.name;
      return CUDA_SUCCESS;
    }
  *pStr = nullptr;
  return CUDA_ERROR_INVALID_VALUE;
}

extern "C" CUresult cuGetErrorString(CUresult error, const char** pStr) {
  if (!pStr) return CUDA_ERROR_INVALID_VALUE;
  for (const auto& t : vgpu::shim::kTexts)
    if (t.value == error) {
      *pStr = t.text;
      return CUDA_SUCCESS;
    }
  return cuGetErrorName(error, pStr);
}
