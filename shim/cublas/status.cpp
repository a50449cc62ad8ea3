// cuBLAS statuses: from the wire, and their names and descriptions (local).
#include <cublas_api.h>

#include "cublas_remote.h"

namespace vgpu::shim {

// A library status travels as 0x20000 + status (cublas.api's wire_base); any
// other failure is the transport's or the host's cudaError_t.
cublasStatus_t cublas_status_from_wire(cudaError_t wire_status) {
  const int v = static_cast<int>(wire_status);
  if (v == 0) return CUBLAS_STATUS_SUCCESS;
  if (v > 0x20000 && v < 0x30000) return static_cast<cublasStatus_t>(v - 0x20000);
  switch (wire_status) {
    case cudaErrorDevicesUnavailable:
    case cudaErrorNoDevice:
    case cudaErrorInitializationError:
    case cudaErrorInsufficientDriver: return CUBLAS_STATUS_NOT_INITIALIZED;  // no host to talk to
    case cudaErrorInvalidValue: return CUBLAS_STATUS_INVALID_VALUE;           // a malformed request
    case cudaErrorNotSupported: return CUBLAS_STATUS_NOT_SUPPORTED;           // a host without this call
    case cudaErrorMemoryAllocation: return CUBLAS_STATUS_ALLOC_FAILED;
    default: return CUBLAS_STATUS_EXECUTION_FAILED;
  }
}

}  // namespace vgpu::shim

namespace {

struct status_text {
  cublasStatus_t status;
  const char* name;
  const char* text;
};

// Descriptions in our words; names are the enumerators.
constexpr status_text kStatuses[] = {
    {CUBLAS_STATUS_SUCCESS, "CUBLAS_STATUS_SUCCESS", "success"},
    {CUBLAS_STATUS_NOT_INITIALIZED, "CUBLAS_STATUS_NOT_INITIALIZED", "the library or handle was not initialized"},
    {CUBLAS_STATUS_ALLOC_FAILED, "CUBLAS_STATUS_ALLOC_FAILED", "a resource allocation failed"},
    {CUBLAS_STATUS_INVALID_VALUE, "CUBLAS_STATUS_INVALID_VALUE", "an invalid value was passed"},
    {CUBLAS_STATUS_ARCH_MISMATCH, "CUBLAS_STATUS_ARCH_MISMATCH", "the device lacks a required feature"},
    {CUBLAS_STATUS_MAPPING_ERROR, "CUBLAS_STATUS_MAPPING_ERROR", "accessing GPU memory failed"},
    {CUBLAS_STATUS_EXECUTION_FAILED, "CUBLAS_STATUS_EXECUTION_FAILED", "the GPU program failed to execute"},
    {CUBLAS_STATUS_INTERNAL_ERROR, "CUBLAS_STATUS_INTERNAL_ERROR", "an internal operation failed"},
    {CUBLAS_STATUS_NOT_SUPPORTED, "CUBLAS_STATUS_NOT_SUPPORTED", "the operation is not supported"},
    {CUBLAS_STATUS_LICENSE_ERROR, "CUBLAS_STATUS_LICENSE_ERROR", "license error"},
};

const status_text* find(cublasStatus_t s) {
  for (const auto& t : kStatuses)
    if (t.status == s) return &t;
  return nullptr;
}

}  // namespace

extern "C" const char* cublasGetStatusName(cublasStatus_t status) {
  const status_text* t = find(status);
  return t ? t->name : "CUBLAS_STATUS_UNKNOWN";
}

extern "C" const char* cublasGetStatusString(cublasStatus_t status) {
  const status_text* t = find(status);
  return t ? t->text : "unknown cuBLAS status";
}
