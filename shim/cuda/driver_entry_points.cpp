// cuGetProcAddress: programs (and NVIDIA's own runtime) find driver functions
// by name; vgpu must hand out its own, never let a caller reach past it.
// cuGetExportTable: NVIDIA's private tables (used by a statically linked
// runtime) are not available through vgpu: a clear error, not a crash.
#include <dlfcn.h>

#include <string>

#include <cuda.h>

#include "shim/cuda/driver_common.h"
#include "shim/transport/guest_log.h"

namespace {
// Entry points whose newer version changed the signature, with the CUDA
// version whose headers first mapped the plain name to it; a caller built
// against older headers must not get them.
struct introduced {
  const char* name;
  int version;
};
constexpr introduced kIntroduced[] = {
    {"cuCtxCreate_v4", 13000},
    {"cuCtxCreate_v3", 99999},  // never the plain name's target
    {"cuGetProcAddress_v2", 12000},
    {"cuDeviceGetUuid_v2", 11040},
};

bool too_new(const std::string& name, int version) {
  for (const auto& i : kIntroduced)
    if (name == i.name) return version < i.version;
  return false;
}

// This library's own handle, found through one of its functions.
void* own_library() {
  static void* handle = [] {
    Dl_info info{};
    if (!dladdr(reinterpret_cast<void*>(&cuGetProcAddress_v2), &info)) return static_cast<void*>(nullptr);
    return dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD);
  }();
  return handle;
}
}  // namespace

// The newest version of `symbol` this library has: cuda.h's names map to
// _v2.._v4 entry points (cuMemAlloc -> cuMemAlloc_v2, cuCtxCreate -> _v4).
extern "C" CUresult cuGetProcAddress_v2(const char* symbol, void** pfn, int cudaVersion, cuuint64_t flags,
                                        CUdriverProcAddressQueryResult* symbolStatus) {
  (void)flags;
  if (!symbol || !pfn) return CUDA_ERROR_INVALID_VALUE;
  *pfn = nullptr;
  void* lib = own_library();
  const std::string base = symbol;
  // Callers built against older headers ask with an older version: before
  // CUDA 3.2 the unversioned entry points were the current ones.
  const char* suffixes[] = {"_v4", "_v3", "_v2", ""};
  for (const char* s : suffixes) {
    if (cudaVersion < 3020 && *s) continue;
    if (too_new(base + s, cudaVersion)) continue;
    if (void* f = lib ? dlsym(lib, (base + s).c_str()) : nullptr) {
      *pfn = f;
      if (symbolStatus) *symbolStatus = CU_GET_PROC_ADDRESS_SUCCESS;
      return CUDA_SUCCESS;
    }
  }
  VGPU_GLOG(warn, "[cuda-transport] cuGetProcAddress: %s (version %d) is not a driver function vgpu knows", symbol,
            cudaVersion);
  // As NVIDIA's driver answers (measured on the H100): success with the
  // status saying not found; a caller that passed no status gets the error.
  if (symbolStatus) {
    *symbolStatus = CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND;
    return CUDA_SUCCESS;
  }
  return CUDA_ERROR_NOT_FOUND;
}

extern "C" CUresult cuGetExportTable(const void** ppExportTable, const CUuuid* pExportTableId) {
  (void)pExportTableId;
  if (ppExportTable) *ppExportTable = nullptr;
  VGPU_GLOG(error, "[cuda-transport] cuGetExportTable: NVIDIA's private export tables are not available through "
                   "vgpu (a statically linked CUDA runtime? build with -cudart shared)");
  return CUDA_ERROR_NOT_SUPPORTED;
}
