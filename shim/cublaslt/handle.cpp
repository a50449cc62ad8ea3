// cublasLtCreate/Destroy and the version queries. A handle is a guest object
// holding the id of the host's cublasLt handle (one per guest handle, in the
// guest's session on the host).
#include <cstring>
#include <mutex>
#include <new>

#include <cuda_runtime_api.h>

#include "cublaslt_remote.h"
#include "shim/cublaslt/lt_objects.h"
#include "shim/transport/blas_handle_bridge.h"

namespace vgpu::shim::lt {

uint64_t own_handle(cublasLtHandle_t handle) {
  if (!handle) return 0;
  handle_object h;
  std::memcpy(&h, static_cast<const void*>(handle), sizeof h);
  return h.magic == kHandleMagic ? h.host_id : 0;
}

uint64_t host_handle(cublasLtHandle_t handle) {
  if (!handle) return 0;
  // A live cuBLAS handle first: its object is not ours to read.
  if (const uint64_t blas = bridge_blas_handle_id(handle)) return blas | protocol::lt::kBlasHandleTag;
  return own_handle(handle);
}

namespace {

// The host library's version, asked once per process (it cannot change
// under a running program).
struct host_version {
  cublasStatus_t status = CUBLAS_STATUS_NOT_INITIALIZED;
  unsigned long long version = 0;
  int major = 0, minor = 0, patch = 0;
};

const host_version& version() {
  static host_version v;
  static std::once_flag once;
  std::call_once(once, [] {
    v.status = remote::vgpuLtGetVersion(&v.version, &v.major, &v.minor, &v.patch);
  });
  return v;
}

}  // namespace
}  // namespace vgpu::shim::lt

extern "C" cublasStatus_t cublasLtCreate(cublasLtHandle_t* handle) {
  if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
  uint64_t id = 0;
  const cublasStatus_t st = vgpu::remote::vgpuLtCreate(&id);
  if (st != CUBLAS_STATUS_SUCCESS) return st;
  auto* h = new (std::nothrow) vgpu::shim::lt::handle_object;
  if (!h) {
    vgpu::remote::vgpuLtDestroy(id);
    return CUBLAS_STATUS_ALLOC_FAILED;
  }
  h->host_id = id;
  *handle = reinterpret_cast<cublasLtHandle_t>(h);
  return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasLtDestroy(cublasLtHandle_t handle) {
  // Only handles cublasLtCreate made (a cuBLAS handle is cublasDestroy's).
  const uint64_t id = vgpu::shim::lt::own_handle(handle);
  if (!id) return CUBLAS_STATUS_NOT_INITIALIZED;
  auto* h = reinterpret_cast<vgpu::shim::lt::handle_object*>(handle);
  const cublasStatus_t st = vgpu::remote::vgpuLtDestroy(id);
  h->magic = 0;  // a second Destroy is caught, not a double free
  delete h;
  return st;
}

extern "C" size_t cublasLtGetVersion(void) {
  const auto& v = vgpu::shim::lt::version();
  return v.status == CUBLAS_STATUS_SUCCESS ? static_cast<size_t>(v.version) : 0;
}

extern "C" cublasStatus_t cublasLtGetProperty(libraryPropertyType type, int* value) {
  if (!value) return CUBLAS_STATUS_INVALID_VALUE;
  const auto& v = vgpu::shim::lt::version();
  if (v.status != CUBLAS_STATUS_SUCCESS) return v.status;
  switch (type) {
    case MAJOR_VERSION: *value = v.major; return CUBLAS_STATUS_SUCCESS;
    case MINOR_VERSION: *value = v.minor; return CUBLAS_STATUS_SUCCESS;
    case PATCH_LEVEL: *value = v.patch; return CUBLAS_STATUS_SUCCESS;
    default: return CUBLAS_STATUS_INVALID_VALUE;
  }
}

// The runtime this library was built against: the guest's libcudart.so.13.
extern "C" size_t cublasLtGetCudartVersion(void) { return CUDART_VERSION; }
