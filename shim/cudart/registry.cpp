// Registration entry points that nvcc's generated code calls from static
// constructors, and the registry behind them.
#include "shim/cudart/registry.h"

#include <cstring>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <unordered_set>

#include <cuda_runtime_api.h>
#include <fatbinary_section.h>

#include "api_ids.h"
#include "api_wire.h"
#include "shim/cudart/device_ranges.h"
#include "shim/transport/guest_call.h"
#include "shim/transport/module_calls.h"
#include "shim/transport/guest_log.h"

namespace vgpu::shim {

struct fat_module {
  uint64_t id = 0;
  const uint8_t* image = nullptr;
  uint64_t size = 0;
  bool loaded = false;
  cudaError_t load_error = cudaSuccess;  // a failed upload is not retried
  void* handle_slot = nullptr;           // what __cudaRegisterFatBinary returned points here
};

namespace {

struct registry_state {
  std::mutex mutex;  // registration is rare; resolution takes it once per entry
  std::unordered_map<void**, std::unique_ptr<fat_module>> modules;  // by handle
  std::unordered_map<const void*, std::unique_ptr<kernel_entry>> kernels;  // by host stub
  std::unordered_set<const void*> kernel_handles;  // the entries, as cudaKernel_t
  std::unordered_map<const void*, std::unique_ptr<var_entry>> vars;  // by host shadow
};

registry_state& reg() {
  static auto* r = new registry_state;  // outlives static destructors that unregister
  return *r;
}

// Uploads the module (shared with libcuda's cuModuleLoadData); the last chunk makes the host load it.
cudaError_t upload(fat_module* m) {
  if (m->loaded) return cudaSuccess;
  if (m->load_error != cudaSuccess) return m->load_error;
  const cudaError_t st = upload_module(m->id, m->image, m->size);
  if (st == cudaSuccess) {
    m->loaded = true;
    VGPU_GLOG(debug, "[cuda-transport] module %llu (%llu bytes) loaded on the host",
              static_cast<unsigned long long>(m->id), static_cast<unsigned long long>(m->size));
  } else if (st != cudaErrorDevicesUnavailable && st != cudaErrorNoDevice) {
    m->load_error = st;
    VGPU_GLOG(warn, "[cuda-transport] the host could not load module %llu: error %d",
              static_cast<unsigned long long>(m->id), static_cast<int>(st));
  }
  return st;
}

}  // namespace

kernel_entry* find_kernel(const void* func) {
  auto& r = reg();
  std::lock_guard<std::mutex> lock(r.mutex);
  if (r.kernel_handles.count(func)) return static_cast<kernel_entry*>(const_cast<void*>(func));
  auto it = r.kernels.find(func);
  return it == r.kernels.end() ? nullptr : it->second.get();
}

var_entry* find_var(const void* symbol) {
  auto& r = reg();
  std::lock_guard<std::mutex> lock(r.mutex);
  auto it = r.vars.find(symbol);
  return it == r.vars.end() ? nullptr : it->second.get();
}

cudaError_t resolve_kernel(kernel_entry* k) {
  static std::mutex resolve_mutex;  // one resolution at a time; launches of resolved kernels skip it
  std::lock_guard<std::mutex> lock(resolve_mutex);
  if (k->resolved) return cudaSuccess;
  cudaError_t st = upload(k->module);
  if (st != cudaSuccess) return st;
  function_info f;
  if ((st = get_function(k->module->id, k->name, &f)) != cudaSuccess) return st;
  k->layout = std::move(f.layout);
  k->param_bytes = f.param_bytes;
  k->function = f.function;
  __atomic_store_n(&k->resolved, true, __ATOMIC_RELEASE);
  return cudaSuccess;
}

cudaError_t resolve_var(var_entry* v) {
  static std::mutex resolve_mutex;
  std::lock_guard<std::mutex> lock(resolve_mutex);
  if (v->resolved) return cudaSuccess;
  cudaError_t st = upload(v->module);
  if (st != cudaSuccess) return st;
  if ((st = get_global(v->module->id, v->name, &v->dptr, &v->bytes)) != cudaSuccess) return st;
  remember_device_range(v->dptr, v->bytes);
  v->resolved = true;
  return cudaSuccess;
}

}  // namespace vgpu::shim

using namespace vgpu::shim;

extern "C" void** __cudaRegisterFatBinary(void* fatCubin) {
  auto& r = reg();
  auto m = std::make_unique<fat_module>();
  const uint64_t size = module_image_size(fatCubin, &m->image);
  // Only a wrapped fatbin is what nvcc registers.
  m->size = fatCubin && static_cast<const __fatBinC_Wrapper_t*>(fatCubin)->magic == FATBINC_MAGIC ? size : 0;
  if (!m->size) VGPU_GLOG(warn, "[cuda-transport] __cudaRegisterFatBinary: not a fatbin vgpu understands; its kernels will fail");
  std::lock_guard<std::mutex> lock(r.mutex);
  m->id = next_module_id();  // one id space with libcuda's modules (one session)
  auto** handle = reinterpret_cast<void**>(&m->handle_slot);
  m->handle_slot = m.get();
  if (!m->size) m->load_error = cudaErrorInvalidKernelImage;
  r.modules.emplace(handle, std::move(m));
  return handle;
}

extern "C" void __cudaRegisterFatBinaryEnd(void**) {}

extern "C" void __cudaUnregisterFatBinary(void** handle) {
  auto& r = reg();
  std::unique_ptr<fat_module> m;
  {
    std::lock_guard<std::mutex> lock(r.mutex);
    auto it = r.modules.find(handle);
    if (it == r.modules.end()) return;
    m = std::move(it->second);
    r.modules.erase(it);
    for (auto k = r.kernels.begin(); k != r.kernels.end();) {
      if (k->second->module == m.get()) {
        r.kernel_handles.erase(k->second.get());
        k = r.kernels.erase(k);
      } else {
        ++k;
      }
    }
    for (auto v = r.vars.begin(); v != r.vars.end();) {
      if (v->second->module == m.get()) {
        if (v->second->resolved) forget_device_range(v->second->dptr);
        v = r.vars.erase(v);
      } else {
        ++v;
      }
    }
  }
  // A library unloaded while the program runs gives its module back; at exit
  // the session's end frees it anyway.
  if (m->loaded) unload_module(m->id);
}

extern "C" void __cudaRegisterFunction(void** handle, const char* hostFun, char* deviceFun, const char* deviceName,
                                       int, uint3*, uint3*, dim3*, dim3*, int*) {
  auto& r = reg();
  std::lock_guard<std::mutex> lock(r.mutex);
  auto it = r.modules.find(handle);
  if (it == r.modules.end() || !hostFun) return;
  auto k = std::make_unique<kernel_entry>();
  k->module = it->second.get();
  k->name = deviceName ? deviceName : (deviceFun ? deviceFun : "");
  r.kernel_handles.insert(k.get());
  r.kernels[hostFun] = std::move(k);
}

extern "C" void __cudaRegisterVar(void** handle, char* hostVar, char*, const char* deviceName, int, size_t size,
                                  int, int) {
  auto& r = reg();
  std::lock_guard<std::mutex> lock(r.mutex);
  auto it = r.modules.find(handle);
  if (it == r.modules.end() || !hostVar || !deviceName) return;
  auto v = std::make_unique<var_entry>();
  v->module = it->second.get();
  v->name = deviceName;
  v->size = size;
  r.vars[hostVar] = std::move(v);
}

extern "C" void __cudaRegisterManagedVar(void**, void**, char*, const char* deviceName, int, size_t, int, int) {
  VGPU_GLOG(warn, "[cuda-transport] managed variable %s: managed memory is not supported by vgpu yet",
            deviceName ? deviceName : "?");
}
