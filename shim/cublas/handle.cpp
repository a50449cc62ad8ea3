// Handles and their state: create/destroy go to the host; stream, math mode,
// atomics mode and workspace are sent only when they change (programs such as
// PyTorch set the stream before every call); pointer mode stays in the guest
// and travels with each compute call.
#include "shim/cublas/handle.h"

#include <cstring>
#include <memory>
#include <mutex>
#include <unordered_map>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "cublas_remote.h"
#include "shim/transport/blas_handle_bridge.h"

namespace vgpu::shim::blas {

namespace {

// Every live handle of the process, owned here.
struct registry {
  std::mutex m;
  std::unordered_map<cublasContext*, std::unique_ptr<cublasContext>> live;
};
registry& handles() {
  static auto* r = new registry;  // never destroyed: programs destroy handles at exit
  return *r;
}

}  // namespace

cublasContext* live(cublasHandle_t h) {
  registry& r = handles();
  std::lock_guard<std::mutex> lock(r.m);
  return r.live.count(h) ? h : nullptr;
}

uint32_t pointer_flags(const cublasContext& c) {
  return c.pointer_mode == CUBLAS_POINTER_MODE_DEVICE ? 1u : 0u;
}

bool encode_scalar(const cublasContext& c, const void* value, uint32_t size, protocol::scalar16* out) {
  std::memset(out->bytes, 0, sizeof out->bytes);
  if (value == nullptr || size > sizeof out->bytes) return false;
  if (c.pointer_mode == CUBLAS_POINTER_MODE_DEVICE) {
    const uint64_t address = reinterpret_cast<uintptr_t>(value);
    std::memcpy(out->bytes, &address, sizeof address);
  } else {
    std::memcpy(out->bytes, value, size);
  }
  return true;
}

}  // namespace vgpu::shim::blas

using vgpu::shim::blas::live;

extern "C" cublasStatus_t cublasCreate_v2(cublasHandle_t* handle) {
  if (handle == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  uint64_t id = 0;
  if (const cublasStatus_t st = vgpu::remote::vgpuBlasCreate(&id); st != CUBLAS_STATUS_SUCCESS) return st;
  auto h = std::make_unique<cublasContext>();
  h->id = id;
  cublasContext* raw = h.get();
  auto& r = vgpu::shim::blas::handles();
  std::lock_guard<std::mutex> lock(r.m);
  r.live.emplace(raw, std::move(h));
  vgpu::shim::bridge_add_blas_handle(raw, id);  // usable as a cublasLtHandle_t (branch lt)
  *handle = raw;
  return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasDestroy_v2(cublasHandle_t handle) {
  std::unique_ptr<cublasContext> owned;
  {
    auto& r = vgpu::shim::blas::handles();
    std::lock_guard<std::mutex> lock(r.m);
    auto it = r.live.find(handle);
    if (it == r.live.end()) return CUBLAS_STATUS_NOT_INITIALIZED;
    owned = std::move(it->second);
    r.live.erase(it);
  }
  if (owned->result_buffer != nullptr) cudaFree(owned->result_buffer);
  vgpu::shim::bridge_remove_blas_handle(handle);  // branch lt
  return vgpu::remote::vgpuBlasDestroy(owned->id);
}

extern "C" cublasStatus_t cublasSetStream_v2(cublasHandle_t handle, cudaStream_t stream) {
  cublasContext* h = live(handle);
  if (h == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (stream == h->stream) return CUBLAS_STATUS_SUCCESS;
  if (const cublasStatus_t st = vgpu::remote::vgpuBlasSetStream(h->id, stream); st != CUBLAS_STATUS_SUCCESS)
    return st;
  h->stream = stream;
  return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasGetStream_v2(cublasHandle_t handle, cudaStream_t* stream) {
  cublasContext* h = live(handle);
  if (h == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (stream == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  *stream = h->stream;
  return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasSetWorkspace_v2(cublasHandle_t handle, void* workspace, size_t bytes) {
  cublasContext* h = live(handle);
  if (h == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (bytes != 0 && workspace == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  if (workspace == h->workspace && bytes == h->workspace_bytes) return CUBLAS_STATUS_SUCCESS;
  if (const cublasStatus_t st = vgpu::remote::vgpuBlasSetWorkspace(h->id, workspace, bytes);
      st != CUBLAS_STATUS_SUCCESS)
    return st;
  h->workspace = workspace;
  h->workspace_bytes = bytes;
  return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasSetPointerMode_v2(cublasHandle_t handle, cublasPointerMode_t mode) {
  cublasContext* h = live(handle);
  if (h == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (mode != CUBLAS_POINTER_MODE_HOST && mode != CUBLAS_POINTER_MODE_DEVICE) return CUBLAS_STATUS_INVALID_VALUE;
  h->pointer_mode = mode;
  return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasGetPointerMode_v2(cublasHandle_t handle, cublasPointerMode_t* mode) {
  cublasContext* h = live(handle);
  if (h == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (mode == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  *mode = h->pointer_mode;
  return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
  cublasContext* h = live(handle);
  if (h == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (mode == h->math_mode) return CUBLAS_STATUS_SUCCESS;
  // The host's cuBLAS judges the value (it knows which modes it has).
  if (const cublasStatus_t st = vgpu::remote::vgpuBlasSetMathMode(h->id, static_cast<int>(mode));
      st != CUBLAS_STATUS_SUCCESS)
    return st;
  h->math_mode = mode;
  return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasGetMathMode(cublasHandle_t handle, cublasMath_t* mode) {
  cublasContext* h = live(handle);
  if (h == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (mode == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  *mode = h->math_mode;
  return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasSetAtomicsMode(cublasHandle_t handle, cublasAtomicsMode_t mode) {
  cublasContext* h = live(handle);
  if (h == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (mode != CUBLAS_ATOMICS_NOT_ALLOWED && mode != CUBLAS_ATOMICS_ALLOWED) return CUBLAS_STATUS_INVALID_VALUE;
  if (mode == h->atomics_mode) return CUBLAS_STATUS_SUCCESS;
  if (const cublasStatus_t st = vgpu::remote::vgpuBlasSetAtomicsMode(h->id, static_cast<int>(mode));
      st != CUBLAS_STATUS_SUCCESS)
    return st;
  h->atomics_mode = mode;
  return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasGetAtomicsMode(cublasHandle_t handle, cublasAtomicsMode_t* mode) {
  cublasContext* h = live(handle);
  if (h == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (mode == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  *mode = h->atomics_mode;
  return CUBLAS_STATUS_SUCCESS;
}

namespace {

// The host library's version, asked once per process.
cublasStatus_t host_version(int* version) {
  static std::mutex m;
  static int cached = 0;
  std::lock_guard<std::mutex> lock(m);
  if (cached == 0) {
    int v = 0;
    if (const cublasStatus_t st = vgpu::remote::vgpuBlasGetVersion(&v); st != CUBLAS_STATUS_SUCCESS) return st;
    cached = v;
  }
  *version = cached;
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace

extern "C" cublasStatus_t cublasGetVersion_v2(cublasHandle_t handle, int* version) {
  if (live(handle) == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (version == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  return host_version(version);
}

extern "C" cublasStatus_t cublasGetProperty(libraryPropertyType type, int* value) {
  if (value == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  int v = 0;
  if (const cublasStatus_t st = host_version(&v); st != CUBLAS_STATUS_SUCCESS) return st;
  switch (type) {
    case MAJOR_VERSION: *value = v / 10000; return CUBLAS_STATUS_SUCCESS;
    case MINOR_VERSION: *value = (v / 100) % 100; return CUBLAS_STATUS_SUCCESS;
    case PATCH_LEVEL: *value = v % 100; return CUBLAS_STATUS_SUCCESS;
    default: return CUBLAS_STATUS_INVALID_VALUE;
  }
}

extern "C" size_t cublasGetCudartVersion(void) { return CUDART_VERSION; }

// Logging is cuBLAS's own debugging aid; vgpu has its own (VGPU_LOG_LEVEL).
extern "C" cublasStatus_t cublasLoggerConfigure(int, int, int, const char*) { return CUBLAS_STATUS_SUCCESS; }
