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

// The fatbin container header (the part vgpu needs: its total size).
struct fatbin_header {
  uint32_t magic;
  uint16_t version;
  uint16_t header_size;
  uint64_t fat_size;
};
constexpr uint32_t kFatbinMagic = 0xBA55ED50;

struct registry_state {
  std::mutex mutex;  // registration is rare; resolution takes it once per entry
  uint64_t next_module = 1;
  std::unordered_map<void**, std::unique_ptr<fat_module>> modules;  // by handle
  std::unordered_map<const void*, std::unique_ptr<kernel_entry>> kernels;  // by host stub
  std::unordered_set<const void*> kernel_handles;  // the entries, as cudaKernel_t
  std::unordered_map<const void*, std::unique_ptr<var_entry>> vars;  // by host shadow
};

registry_state& reg() {
  static auto* r = new registry_state;  // outlives static destructors that unregister
  return *r;
}

uint64_t fatbin_size(const void* fat_cubin) {
  const auto* w = static_cast<const __fatBinC_Wrapper_t*>(fat_cubin);
  if (!w || w->magic != FATBINC_MAGIC || !w->data) return 0;
  fatbin_header h;
  std::memcpy(&h, w->data, sizeof h);
  if (h.magic != kFatbinMagic) return 0;
  return h.header_size + h.fat_size;
}

// Uploads the module in data-area chunks; the last chunk makes the host load it.
cudaError_t upload(fat_module* m) {
  if (m->loaded) return cudaSuccess;
  if (m->load_error != cudaSuccess) return m->load_error;
  channel_guard g;
  if (g.status() != cudaSuccess) return g.status();
  const uint64_t chunk = g->data_size();
  cudaError_t st = cudaSuccess;
  for (uint64_t off = 0; off < m->size && st == cudaSuccess; off += chunk) {
    const uint64_t n = std::min(chunk, m->size - off);
    std::memcpy(g->data(), m->image + off, n);
    wire::vgpuModuleLoad_req req{};
    req.module = m->id;
    req.offset = off;
    req.total = m->size;
    req.image = protocol::data_ref{0, n};
    uint64_t seq = 0;
    st = g->submit(static_cast<uint16_t>(protocol::call_id::vgpuModuleLoad), 0, &req,
                   wire::vgpuModuleLoad_req::wire_size(), nullptr, 0, n, &seq);
    if (st == cudaSuccess) st = g->wait(seq, nullptr, 0);
  }
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

// Sends a name through the data area and gets fixed results back.
template <typename Req, typename Rep>
cudaError_t named_call(protocol::call_id id, Req& req, protocol::data_ref* name_field, const std::string& name,
                       Rep* rep, uint64_t layout_bytes = 0, protocol::data_ref* layout_field = nullptr,
                       std::vector<uint8_t>* layout_out = nullptr) {
  channel_guard g;
  if (g.status() != cudaSuccess) return g.status();
  if (name.size() + 1 + layout_bytes > g->data_size()) return cudaErrorInvalidValue;
  std::memcpy(g->data(), name.c_str(), name.size() + 1);
  *name_field = protocol::data_ref{0, name.size() + 1};
  const uint64_t layout_off = (name.size() + 1 + 7) / 8 * 8;
  if (layout_field) *layout_field = protocol::data_ref{layout_off, layout_bytes};
  uint64_t seq = 0;
  cudaError_t st = g->submit(static_cast<uint16_t>(id), 0, &req, Req::wire_size(), nullptr, 0,
                             name.size() + 1, &seq);
  if (st == cudaSuccess) st = g->wait(seq, rep, Rep::wire_size());
  if (st == cudaSuccess && layout_out) layout_out->assign(g->data() + layout_off, g->data() + layout_off + layout_bytes);
  return st;
}

constexpr uint32_t kMaxParams = 4096;  // a 32 KiB parameter block of 8-byte params

}  // namespace

kernel_entry* find_kernel(const void* func) {
  auto& r = reg();
  std::lock_guard<std::mutex> lock(r.mutex);
  if (r.kernel_handles.count(func)) return static_cast<kernel_entry*>(const_cast<void*>(func));
  auto it = r.kernels.find(func);
  return it == r.kernels.end() ? nullptr : it->second.get();
}

const void* host_function_of(uint64_t function, kernel_entry** entry) {
  auto& r = reg();
  std::lock_guard<std::mutex> lock(r.mutex);
  for (const auto& [stub, k] : r.kernels)
    if (__atomic_load_n(&k->resolved, __ATOMIC_ACQUIRE) && k->function == function) {
      *entry = k.get();
      return stub;
    }
  return nullptr;
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
  wire::vgpuFunctionGet_req req{};
  req.module = k->module->id;
  wire::vgpuFunctionGet_rep rep{};
  std::vector<uint8_t> layout;
  st = named_call(protocol::call_id::vgpuFunctionGet, req, &req.name, k->name, &rep,
                  kMaxParams * 8ull, &req.layout, &layout);
  if (st != cudaSuccess) return st;
  if (rep.paramCount > kMaxParams) return cudaErrorInvalidValue;
  k->layout.resize(rep.paramCount);
  uint32_t end = 0;
  for (uint32_t i = 0; i < rep.paramCount; ++i) {
    std::memcpy(&k->layout[i].first, layout.data() + 8 * i, 4);
    std::memcpy(&k->layout[i].second, layout.data() + 8 * i + 4, 4);
    end = std::max(end, k->layout[i].first + k->layout[i].second);
  }
  k->param_bytes = end;
  k->function = rep.function;
  __atomic_store_n(&k->resolved, true, __ATOMIC_RELEASE);
  return cudaSuccess;
}

cudaError_t resolve_var(var_entry* v) {
  static std::mutex resolve_mutex;
  std::lock_guard<std::mutex> lock(resolve_mutex);
  if (v->resolved) return cudaSuccess;
  cudaError_t st = upload(v->module);
  if (st != cudaSuccess) return st;
  wire::vgpuModuleGetGlobal_req req{};
  req.module = v->module->id;
  wire::vgpuModuleGetGlobal_rep rep{};
  st = named_call(protocol::call_id::vgpuModuleGetGlobal, req, &req.name, v->name, &rep);
  if (st != cudaSuccess) return st;
  v->dptr = rep.dptr;
  v->bytes = rep.bytes;
  remember_device_range(v->dptr, v->bytes);
  v->resolved = true;
  return cudaSuccess;
}

}  // namespace vgpu::shim

using namespace vgpu::shim;

extern "C" void** __cudaRegisterFatBinary(void* fatCubin) {
  auto& r = reg();
  auto m = std::make_unique<fat_module>();
  m->size = fatbin_size(fatCubin);
  if (m->size) m->image = reinterpret_cast<const uint8_t*>(static_cast<const __fatBinC_Wrapper_t*>(fatCubin)->data);
  else VGPU_GLOG(warn, "[cuda-transport] __cudaRegisterFatBinary: not a fatbin vgpu understands; its kernels will fail");
  std::lock_guard<std::mutex> lock(r.mutex);
  m->id = r.next_module++;
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
  if (m->loaded) {
    vgpu::wire::vgpuModuleUnload_req req{};
    req.module = m->id;
    guest_call(static_cast<uint16_t>(vgpu::protocol::call_id::vgpuModuleUnload), &req,
               vgpu::wire::vgpuModuleUnload_req::wire_size(), nullptr, 0, 0);
  }
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
