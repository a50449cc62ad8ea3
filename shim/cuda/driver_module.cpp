// Modules, libraries and functions through the driver API: cuModuleLoadData
// and friends upload the image with the same wire calls as the runtime's
// registered fatbins (shim/transport/module_calls.h); a function's id and
// parameter layout are fetched once, so a launch packs without a round trip.
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <mutex>
#include <unordered_set>

#include <cuda.h>
#include <cuda_runtime_api.h>

#include "guest_remote.h"
#include "shim/cuda/driver_common.h"
#include "shim/cuda/driver_objects.h"
#include "shim/transport/device_ranges.h"
#include "shim/transport/module_calls.h"

namespace vgpu::shim {

namespace {

struct objects {
  std::mutex mutex;
  std::unordered_set<drv_module*> modules;      // owned (deleted on unload)
  std::unordered_set<drv_function*> functions;  // owned by their module
  std::unordered_set<drv_library*> libraries;   // owned
};

objects& objs() {
  static auto* o = new objects;  // outlives static destructors of the program
  return *o;
}

}  // namespace

drv_module* live_module(CUmodule m) {
  auto& o = objs();
  std::lock_guard<std::mutex> lock(o.mutex);
  auto* p = reinterpret_cast<drv_module*>(m);
  return o.modules.count(p) ? p : nullptr;
}

drv_function* live_function(CUfunction f) {
  auto& o = objs();
  std::lock_guard<std::mutex> lock(o.mutex);
  auto* p = reinterpret_cast<drv_function*>(f);
  return o.functions.count(p) ? p : nullptr;
}

drv_library* live_library(CUlibrary l) {
  auto& o = objs();
  std::lock_guard<std::mutex> lock(o.mutex);
  auto* p = reinterpret_cast<drv_library*>(l);
  return o.libraries.count(p) ? p : nullptr;
}

CUresult load_module(const void* image, drv_module** out) {
  const uint8_t* bytes = nullptr;
  const uint64_t size = module_image_size(image, &bytes);
  if (size == 0) return CUDA_ERROR_INVALID_IMAGE;
  auto m = std::make_unique<drv_module>();
  m->id = next_module_id();
  const cudaError_t st = upload_module(m->id, bytes, size);
  if (st == cudaErrorInvalidKernelImage || st == cudaErrorInvalidValue) return CUDA_ERROR_INVALID_IMAGE;
  if (st != cudaSuccess) return to_cu(st);
  auto& o = objs();
  std::lock_guard<std::mutex> lock(o.mutex);
  *out = m.get();
  o.modules.insert(m.release());
  return CUDA_SUCCESS;
}

CUresult unload_module(drv_module* m) {
  {
    auto& o = objs();
    std::lock_guard<std::mutex> lock(o.mutex);
    if (!o.modules.erase(m)) return CUDA_ERROR_INVALID_HANDLE;
    for (const auto& f : m->functions) o.functions.erase(f.second.get());
  }
  for (const uint64_t g : m->globals) forget_device_range(g);
  const std::unique_ptr<drv_module> owned(m);
  return to_cu(vgpu::shim::unload_module(m->id));
}

CUresult module_function(drv_module* m, const char* name, drv_function** out) {
  static std::mutex fetch_mutex;  // one lookup at a time; found functions are cached
  std::lock_guard<std::mutex> fetch(fetch_mutex);
  {
    auto& o = objs();
    std::lock_guard<std::mutex> lock(o.mutex);
    if (!o.modules.count(m)) return CUDA_ERROR_INVALID_HANDLE;
    auto it = m->functions.find(name);
    if (it != m->functions.end()) {
      *out = it->second.get();
      return CUDA_SUCCESS;
    }
  }
  function_info info;
  const cudaError_t st = get_function(m->id, name, &info);
  if (st == cudaErrorInvalidDeviceFunction) return CUDA_ERROR_NOT_FOUND;
  if (st != cudaSuccess) return to_cu(st);
  auto f = std::make_unique<drv_function>();
  f->module = m;
  f->name = name;
  f->function = info.function;
  f->layout = std::move(info.layout);
  f->param_bytes = info.param_bytes;
  auto& o = objs();
  std::lock_guard<std::mutex> lock(o.mutex);
  if (!o.modules.count(m)) return CUDA_ERROR_INVALID_HANDLE;  // unloaded meanwhile
  *out = f.get();
  o.functions.insert(f.get());
  m->functions.emplace(name, std::move(f));
  return CUDA_SUCCESS;
}

CUresult add_library(drv_module* m, drv_library** out) {
  auto l = std::make_unique<drv_library>();
  l->module = m;
  auto& o = objs();
  std::lock_guard<std::mutex> lock(o.mutex);
  *out = l.get();
  o.libraries.insert(l.release());
  return CUDA_SUCCESS;
}

CUresult remove_library(drv_library* l) {
  {
    auto& o = objs();
    std::lock_guard<std::mutex> lock(o.mutex);
    if (!o.libraries.erase(l)) return CUDA_ERROR_INVALID_HANDLE;
  }
  const std::unique_ptr<drv_library> owned(l);
  return unload_module(l->module);
}

}  // namespace vgpu::shim

using namespace vgpu::shim;

namespace {

// JIT options that are outputs: nothing was compiled in the guest, so no log
// bytes and no time. Inputs (log buffers, optimisation levels) are accepted and
// have no effect: the host driver compiles PTX with its defaults.
void answer_jit_outputs(unsigned n, const CUjit_option* options, void** values) {
  if (!options || !values) return;
  for (unsigned i = 0; i < n; ++i) {
    switch (options[i]) {
      case CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES:
      case CU_JIT_ERROR_LOG_BUFFER_SIZE_BYTES:
        values[i] = nullptr;  // bytes written: 0
        break;
      case CU_JIT_WALL_TIME: {
        const float zero = 0.0f;
        std::memcpy(&values[i], &zero, sizeof zero);
        break;
      }
      default:
        break;
    }
  }
}

}  // namespace

extern "C" CUresult cuModuleLoadData(CUmodule* module, const void* image) {
  VGPU_REQUIRE_INIT();
  if (!module || !image) return CUDA_ERROR_INVALID_VALUE;
  drv_module* m = nullptr;
  const CUresult r = load_module(image, &m);
  if (r == CUDA_SUCCESS) *module = reinterpret_cast<CUmodule>(m);
  return r;
}

extern "C" CUresult cuModuleLoadDataEx(CUmodule* module, const void* image, unsigned int numOptions,
                                       CUjit_option* options, void** optionValues) {
  const CUresult r = cuModuleLoadData(module, image);
  answer_jit_outputs(numOptions, options, optionValues);
  return r;
}

// A fatbin container only: NVIDIA's driver answers a wrapper (what nvcc
// embeds, magic 0x466243B1) with CUDA_ERROR_INVALID_IMAGE here (measured).
extern "C" CUresult cuModuleLoadFatBinary(CUmodule* module, const void* fatCubin) {
  constexpr uint32_t kWrapperMagic = 0x466243B1;
  uint32_t magic = 0;
  if (fatCubin) std::memcpy(&magic, fatCubin, sizeof magic);
  if (magic == kWrapperMagic) return CUDA_ERROR_INVALID_IMAGE;
  return cuModuleLoadData(module, fatCubin);
}

extern "C" CUresult cuModuleLoad(CUmodule* module, const char* fname) {
  VGPU_REQUIRE_INIT();
  if (!module || !fname) return CUDA_ERROR_INVALID_VALUE;
  std::ifstream in(fname, std::ios::binary);
  if (!in) return CUDA_ERROR_FILE_NOT_FOUND;
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  bytes.push_back('\0');  // a PTX file ends where its text ends
  return cuModuleLoadData(module, bytes.data());
}

extern "C" CUresult cuModuleUnload(CUmodule hmod) {
  VGPU_REQUIRE_INIT();
  return unload_module(reinterpret_cast<drv_module*>(hmod));
}

extern "C" CUresult cuModuleGetFunction(CUfunction* hfunc, CUmodule hmod, const char* name) {
  VGPU_REQUIRE_INIT();
  if (!hfunc || !name) return CUDA_ERROR_INVALID_VALUE;
  drv_function* f = nullptr;
  const CUresult r = module_function(reinterpret_cast<drv_module*>(hmod), name, &f);
  if (r == CUDA_SUCCESS) *hfunc = reinterpret_cast<CUfunction>(f);
  return r;
}

extern "C" CUresult cuModuleGetGlobal(CUdeviceptr* dptr, size_t* bytes, CUmodule hmod,
                                      const char* name) {  // cuModuleGetGlobal_v2
  VGPU_REQUIRE_INIT();
  if (!name) return CUDA_ERROR_INVALID_VALUE;
  drv_module* m = live_module(hmod);
  if (!m) return CUDA_ERROR_INVALID_HANDLE;
  uint64_t p = 0, n = 0;
  const cudaError_t st = get_global(m->id, name, &p, &n);
  if (st == cudaErrorInvalidSymbol) return CUDA_ERROR_NOT_FOUND;
  if (st != cudaSuccess) return to_cu(st);
  remember_device_range(p, n);  // cudaMemcpyDefault knows it, until the module goes
  {
    auto& o = objs();
    std::lock_guard<std::mutex> lock(o.mutex);
    m->globals.push_back(p);
  }
  if (dptr) *dptr = p;
  if (bytes) *bytes = n;
  return CUDA_SUCCESS;
}

// --- libraries (context-independent modules; vgpu has one context) ----------

extern "C" CUresult cuLibraryLoadData(CUlibrary* library, const void* code, CUjit_option* jitOptions,
                                      void** jitOptionsValues, unsigned int numJitOptions,
                                      CUlibraryOption* /*libraryOptions*/, void** /*libraryOptionValues*/,
                                      unsigned int /*numLibraryOptions*/) {
  VGPU_REQUIRE_INIT();
  if (!library || !code) return CUDA_ERROR_INVALID_VALUE;
  drv_module* m = nullptr;
  CUresult r = load_module(code, &m);
  answer_jit_outputs(numJitOptions, jitOptions, jitOptionsValues);
  if (r != CUDA_SUCCESS) return r;
  drv_library* l = nullptr;
  r = add_library(m, &l);
  if (r == CUDA_SUCCESS) *library = reinterpret_cast<CUlibrary>(l);
  return r;
}

extern "C" CUresult cuLibraryUnload(CUlibrary library) {
  VGPU_REQUIRE_INIT();
  return remove_library(reinterpret_cast<drv_library*>(library));
}

extern "C" CUresult cuLibraryGetModule(CUmodule* pMod, CUlibrary library) {
  VGPU_REQUIRE_INIT();
  if (!pMod) return CUDA_ERROR_INVALID_VALUE;
  drv_library* l = live_library(library);
  if (!l) return CUDA_ERROR_INVALID_HANDLE;
  *pMod = reinterpret_cast<CUmodule>(l->module);
  return CUDA_SUCCESS;
}

// A CUkernel is the function of the library's module: one context, so the
// kernel and its function in the current context are the same object.
extern "C" CUresult cuLibraryGetKernel(CUkernel* pKernel, CUlibrary library, const char* name) {
  VGPU_REQUIRE_INIT();
  if (!pKernel || !name) return CUDA_ERROR_INVALID_VALUE;
  drv_library* l = live_library(library);
  if (!l) return CUDA_ERROR_INVALID_HANDLE;
  drv_function* f = nullptr;
  const CUresult r = module_function(l->module, name, &f);
  if (r == CUDA_SUCCESS) *pKernel = reinterpret_cast<CUkernel>(f);
  return r;
}

extern "C" CUresult cuKernelGetFunction(CUfunction* pFunc, CUkernel kernel) {
  VGPU_REQUIRE_INIT();
  if (!pFunc) return CUDA_ERROR_INVALID_VALUE;
  drv_function* f = live_function(reinterpret_cast<CUfunction>(kernel));
  if (!f) return CUDA_ERROR_INVALID_HANDLE;
  *pFunc = reinterpret_cast<CUfunction>(f);
  return CUDA_SUCCESS;
}

extern "C" CUresult cuKernelGetName(const char** name, CUkernel kernel) {
  VGPU_REQUIRE_INIT();
  if (!name) return CUDA_ERROR_INVALID_VALUE;
  drv_function* f = live_function(reinterpret_cast<CUfunction>(kernel));
  if (!f) return CUDA_ERROR_INVALID_HANDLE;
  *name = f->name.c_str();
  return CUDA_SUCCESS;
}

// --- functions -----------------------------------------------------------------

extern "C" CUresult cuFuncGetAttribute(int* pi, CUfunction_attribute attrib, CUfunction hfunc) {
  VGPU_REQUIRE_INIT();
  if (!pi) return CUDA_ERROR_INVALID_VALUE;
  drv_function* f = live_function(hfunc);
  if (!f) return CUDA_ERROR_INVALID_HANDLE;
  cudaFuncAttributes a;
  if (const cudaError_t st = vgpu::remote::vgpuFuncGetAttributes(&a, f->function); st != cudaSuccess) {
    return to_cu(st);
  }
  switch (attrib) {
    case CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK: *pi = a.maxThreadsPerBlock; break;
    case CU_FUNC_ATTRIBUTE_SHARED_SIZE_BYTES: *pi = static_cast<int>(a.sharedSizeBytes); break;
    case CU_FUNC_ATTRIBUTE_CONST_SIZE_BYTES: *pi = static_cast<int>(a.constSizeBytes); break;
    case CU_FUNC_ATTRIBUTE_LOCAL_SIZE_BYTES: *pi = static_cast<int>(a.localSizeBytes); break;
    case CU_FUNC_ATTRIBUTE_NUM_REGS: *pi = a.numRegs; break;
    case CU_FUNC_ATTRIBUTE_PTX_VERSION: *pi = a.ptxVersion; break;
    case CU_FUNC_ATTRIBUTE_BINARY_VERSION: *pi = a.binaryVersion; break;
    case CU_FUNC_ATTRIBUTE_CACHE_MODE_CA: *pi = a.cacheModeCA; break;
    case CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES: *pi = a.maxDynamicSharedSizeBytes; break;
    case CU_FUNC_ATTRIBUTE_PREFERRED_SHARED_MEMORY_CARVEOUT: *pi = a.preferredShmemCarveout; break;
    case CU_FUNC_ATTRIBUTE_CLUSTER_SIZE_MUST_BE_SET: *pi = a.clusterDimMustBeSet; break;
    case CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_WIDTH: *pi = a.requiredClusterWidth; break;
    case CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_HEIGHT: *pi = a.requiredClusterHeight; break;
    case CU_FUNC_ATTRIBUTE_REQUIRED_CLUSTER_DEPTH: *pi = a.requiredClusterDepth; break;
    case CU_FUNC_ATTRIBUTE_NON_PORTABLE_CLUSTER_SIZE_ALLOWED: *pi = a.nonPortableClusterSizeAllowed; break;
    case CU_FUNC_ATTRIBUTE_CLUSTER_SCHEDULING_POLICY_PREFERENCE: *pi = a.clusterSchedulingPolicyPreference; break;
    default: return CUDA_ERROR_INVALID_VALUE;
  }
  return CUDA_SUCCESS;
}

extern "C" CUresult cuFuncSetAttribute(CUfunction hfunc, CUfunction_attribute attrib, int value) {
  VGPU_REQUIRE_INIT();
  drv_function* f = live_function(hfunc);
  if (!f) return CUDA_ERROR_INVALID_HANDLE;
  // cudaFuncAttribute shares CUfunction_attribute's numbering for the settable ones.
  return to_cu(vgpu::remote::vgpuFuncSetAttribute(f->function, attrib, value));
}

extern "C" CUresult cuKernelGetAttribute(int* pi, CUfunction_attribute attrib, CUkernel kernel, CUdevice /*dev*/) {
  return cuFuncGetAttribute(pi, attrib, reinterpret_cast<CUfunction>(kernel));
}

extern "C" CUresult cuKernelSetAttribute(CUfunction_attribute attrib, int val, CUkernel kernel, CUdevice /*dev*/) {
  return cuFuncSetAttribute(reinterpret_cast<CUfunction>(kernel), attrib, val);
}

extern "C" CUresult cuFuncSetCacheConfig(CUfunction hfunc, CUfunc_cache config) {
  VGPU_REQUIRE_INIT();
  // A preference the hardware may ignore (Hopper sizes L1/shared itself).
  if (!live_function(hfunc)) return CUDA_ERROR_INVALID_HANDLE;
  return config >= CU_FUNC_CACHE_PREFER_NONE && config <= CU_FUNC_CACHE_PREFER_EQUAL ? CUDA_SUCCESS
                                                                                     : CUDA_ERROR_INVALID_VALUE;
}

extern "C" CUresult cuFuncGetParamInfo(CUfunction func, size_t paramIndex, size_t* paramOffset, size_t* paramSize) {
  VGPU_REQUIRE_INIT();
  drv_function* f = live_function(func);
  if (!f) return CUDA_ERROR_INVALID_HANDLE;
  if (paramIndex >= f->layout.size()) return CUDA_ERROR_INVALID_VALUE;
  if (paramOffset) *paramOffset = f->layout[paramIndex].first;
  if (paramSize) *paramSize = f->layout[paramIndex].second;
  return CUDA_SUCCESS;
}

extern "C" CUresult cuFuncGetName(const char** name, CUfunction hfunc) {
  return cuKernelGetName(name, reinterpret_cast<CUkernel>(hfunc));
}

extern "C" CUresult cuFuncGetModule(CUmodule* hmod, CUfunction hfunc) {
  VGPU_REQUIRE_INIT();
  if (!hmod) return CUDA_ERROR_INVALID_VALUE;
  drv_function* f = live_function(hfunc);
  if (!f) return CUDA_ERROR_INVALID_HANDLE;
  *hmod = reinterpret_cast<CUmodule>(f->module);
  return CUDA_SUCCESS;
}

// The host loads a function when it is first used (lazy loading is the
// host driver's business); to the guest every function is ready.
extern "C" CUresult cuFuncIsLoaded(CUfunctionLoadingState* state, CUfunction function) {
  VGPU_REQUIRE_INIT();
  if (!state) return CUDA_ERROR_INVALID_VALUE;
  if (!live_function(function)) return CUDA_ERROR_INVALID_HANDLE;
  *state = CU_FUNCTION_LOADING_STATE_LOADED;
  return CUDA_SUCCESS;
}

extern "C" CUresult cuFuncLoad(CUfunction function) {
  VGPU_REQUIRE_INIT();
  return live_function(function) ? CUDA_SUCCESS : CUDA_ERROR_INVALID_HANDLE;
}

extern "C" CUresult cuKernelGetParamInfo(CUkernel kernel, size_t paramIndex, size_t* paramOffset, size_t* paramSize) {
  return cuFuncGetParamInfo(reinterpret_cast<CUfunction>(kernel), paramIndex, paramOffset, paramSize);
}

extern "C" CUresult cuLibraryGetGlobal(CUdeviceptr* dptr, size_t* bytes, CUlibrary library, const char* name) {
  VGPU_REQUIRE_INIT();
  drv_library* l = live_library(library);
  if (!l) return CUDA_ERROR_INVALID_HANDLE;
  return cuModuleGetGlobal(dptr, bytes, reinterpret_cast<CUmodule>(l->module), name);
}

extern "C" CUresult cuLibraryLoadFromFile(CUlibrary* library, const char* fileName, CUjit_option* jitOptions,
                                          void** jitOptionsValues, unsigned int numJitOptions,
                                          CUlibraryOption* libraryOptions, void** libraryOptionValues,
                                          unsigned int numLibraryOptions) {
  VGPU_REQUIRE_INIT();
  if (!library || !fileName) return CUDA_ERROR_INVALID_VALUE;
  std::ifstream in(fileName, std::ios::binary);
  if (!in) return CUDA_ERROR_FILE_NOT_FOUND;
  std::vector<char> bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  bytes.push_back('\0');  // a PTX file ends where its text ends
  return cuLibraryLoadData(library, bytes.data(), jitOptions, jitOptionsValues, numJitOptions, libraryOptions,
                           libraryOptionValues, numLibraryOptions);
}

// The host driver loads lazily or eagerly as its own CUDA_MODULE_LOADING says;
// to the guest a function is ready when it has it (cuFuncIsLoaded).
extern "C" CUresult cuModuleGetLoadingMode(CUmoduleLoadingMode* mode) {
  VGPU_REQUIRE_INIT();
  if (!mode) return CUDA_ERROR_INVALID_VALUE;
  *mode = CU_MODULE_EAGER_LOADING;
  return CUDA_SUCCESS;
}
