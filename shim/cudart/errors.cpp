// Error state and names: guest-local, no call goes to the host.
#include <mutex>
#include <set>
#include <string>

#include <cuda_runtime_api.h>

#include "shim/cudart/last_error.h"
#include "shim/cudart/unsupported.h"
#include "shim/transport/guest_log.h"

namespace vgpu::shim {

namespace {
thread_local cudaError_t t_last_error = cudaSuccess;

struct error_name {
  int value;
  const char* name;
};
// Generated from NVIDIA's driver_types.h (shim/cudart/gen_error_names.py).
constexpr error_name kErrorNames[] = {
#include "cuda_error_names.inc"
};

// The messages of NVIDIA's runtime for the errors programs meet most; the
// others fall back to the name.
struct error_text {
  cudaError_t value;
  const char* text;
};
constexpr error_text kErrorTexts[] = {
    {cudaSuccess, "no error"},
    {cudaErrorInvalidValue, "invalid argument"},
    {cudaErrorMemoryAllocation, "out of memory"},
    {cudaErrorInitializationError, "initialization error"},
    {cudaErrorInvalidDevice, "invalid device ordinal"},
    {cudaErrorInvalidMemcpyDirection, "invalid copy direction for memcpy"},
    {cudaErrorInvalidResourceHandle, "invalid resource handle"},
    {cudaErrorNotReady, "device not ready"},
    {cudaErrorNoDevice, "no CUDA-capable device is detected"},
    {cudaErrorDevicesUnavailable, "CUDA-capable device(s) is/are busy or unavailable"},
    {cudaErrorNotSupported, "operation not supported"},
    {cudaErrorInvalidDevicePointer, "invalid device pointer"},
    {cudaErrorUnknown, "unknown error"},
};
}  // namespace

void set_last_error(cudaError_t e) { t_last_error = e; }
cudaError_t peek_last_error() { return t_last_error; }
cudaError_t take_last_error() {
  const cudaError_t e = t_last_error;
  t_last_error = cudaSuccess;
  return e;
}

int not_supported(const char* name) {
  static std::mutex m;
  static std::set<std::string>* seen = new std::set<std::string>;
  {
    std::lock_guard<std::mutex> lock(m);
    if (seen->insert(name).second)
      VGPU_GLOG(warn, "[cuda-transport] %s is not supported by vgpu yet: returning cudaErrorNotSupported", name);
  }
  set_last_error(cudaErrorNotSupported);
  return cudaErrorNotSupported;
}

void** unsupported_handle() {
  static void* handle[4] = {};
  return handle;
}

const char* error_name_of(cudaError_t e) {
  for (const auto& n : kErrorNames)
    if (n.value == static_cast<int>(e)) return n.name;
  return nullptr;
}

}  // namespace vgpu::shim

using namespace vgpu::shim;

extern "C" cudaError_t cudaGetLastError() { return take_last_error(); }
extern "C" cudaError_t cudaPeekAtLastError() { return peek_last_error(); }

extern "C" const char* cudaGetErrorName(cudaError_t error) {
  const char* n = error_name_of(error);
  return n ? n : "unrecognized error code";
}

extern "C" const char* cudaGetErrorString(cudaError_t error) {
  for (const auto& t : kErrorTexts)
    if (t.value == error) return t.text;
  const char* n = error_name_of(error);
  return n ? n : "unrecognized error code";
}
