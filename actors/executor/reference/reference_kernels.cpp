// Modules, kernels and launches on the reference executor: every check a GPU
// makes, but no GPU code runs. A launch is validated and recorded byte for
// byte (vgpuDebugLaunchRecord gives it back), so that CI without a GPU can
// verify registration and launch marshalling.
#include <algorithm>
#include <climits>
#include <cstring>
#include <new>
#include <utility>

#include <spdlog/spdlog.h>

#include "actors/executor/fatbin/fatbin.h"
#include "actors/executor/fatbin/ptx.h"
#include "actors/executor/launch_record.h"
#include "actors/executor/reference/reference_session.h"

namespace vgpu::host::reference {

namespace {

constexpr size_t kLaunchRecords = 4096;

// The sm_90 limits reference_device.cpp advertises; a launch beyond them
// fails here as it would on the GPU.
constexpr uint64_t kMaxThreadsPerBlock = 1024;
constexpr uint32_t kMaxBlockZ = 64;
constexpr uint32_t kMaxGridX = INT_MAX;
constexpr uint32_t kMaxGridYZ = 65535;
constexpr int32_t kMaxDynamicShared = 227 << 10;  // sharedMemPerBlockOptin
constexpr uint64_t kSharedPerSM = 228 << 10;       // sharedMemPerMultiprocessor
constexpr int32_t kMaxThreadsPerSM = 2048;
constexpr int32_t kMaxBlocksPerSM = 32;
constexpr int32_t kPortableCluster = 8;      // blocks per cluster, any sm_90
constexpr int32_t kNonPortableCluster = 16;  // with NonPortableClusterSizeAllowed

// The guest's name bytes, up to a NUL or the end of the span (a trailing NUL
// is optional).
std::string name_of(const const_bytes& name) {
  const char* p = reinterpret_cast<const char*>(name.data);
  const void* nul = name.size != 0 ? std::memchr(p, 0, name.size) : nullptr;
  const size_t len = nul != nullptr ? static_cast<size_t>(static_cast<const char*>(nul) - p)
                                    : static_cast<size_t>(name.size);
  return std::string(p, len);
}

cudaError_t bad_handle(const char* call, const char* what, uint64_t id, const call_context& ctx) {
  spdlog::debug("[reference-executor] {}: no {} {:#x} in this session (vm={})", call, what, id,
                ctx.vm_id);
  return cudaErrorInvalidResourceHandle;
}

}  // namespace

const fatbin::kernel_info& reference_session::kernel_of(const function_state& f) const {
  // Unloading a module erases its functions, so the module is always there.
  return modules_.find(f.module)->second.info.kernels[f.kernel];
}

// --- modules ------------------------------------------------------------------

cudaError_t reference_session::on_vgpuModuleLoad(call_context& ctx, uint64_t module,
                                                 uint64_t offset, uint64_t total,
                                                 const_bytes image) {
  if (modules_.count(module) != 0) {
    spdlog::debug("[reference-executor] vgpuModuleLoad: module {:#x} is loaded already (vm={})", module, ctx.vm_id);
    return cudaErrorInvalidValue;
  }
  std::vector<uint8_t> bytes;
  const char* why = nullptr;
  switch (uploads_.add(module, offset, total, image, &bytes, &why)) {
    case module_uploads::result::more:
      return cudaSuccess;
    case module_uploads::result::refused:
      spdlog::debug("[reference-executor] vgpuModuleLoad: module {:#x} chunk at {} (+{}) of {}: {} (vm={})",
                    module, offset, image.size, total, why, ctx.vm_id);
      return cudaErrorInvalidValue;
    case module_uploads::result::no_memory:
      spdlog::debug("[reference-executor] vgpuModuleLoad: host RAM refused {} bytes (vm={})", total, ctx.vm_id);
      return cudaErrorMemoryAllocation;
    case module_uploads::result::complete:
      break;
  }
  return load_module(ctx, module, bytes);
}

cudaError_t reference_session::load_module(const call_context& ctx, uint64_t module,
                                           const std::vector<uint8_t>& image) {
  loaded_module m;
  std::string why;
  // A driver API guest may load PTX text itself (cuModuleLoadData), NUL included.
  uint32_t magic = 0;
  if (image.size() >= sizeof magic) std::memcpy(&magic, image.data(), sizeof magic);
  const bool ptx_text = magic != fatbin::kFatbinMagic && !image.empty() && image.back() == 0 &&
                        std::memchr(image.data(), 0, image.size()) == &image.back();
  const bool parsed =
      ptx_text ? fatbin::parse_ptx(std::string_view(reinterpret_cast<const char*>(image.data()), image.size() - 1),
                                   &m.info, &why)
               : fatbin::parse_fatbin(image.data(), image.size(), &m.info, &why);
  if (!parsed) {
    // Once per session where an operator looks: every kernel of the program
    // fails after this, and the reason says how to rebuild it.
    const auto level = warned_image_ ? spdlog::level::debug : spdlog::level::warn;
    warned_image_ = true;
    spdlog::log(level, "[reference-executor] vgpuModuleLoad: module {:#x} ({} bytes) refused: {} "
                "(vm={})",
                module, image.size(), why, ctx.vm_id);
    return cudaErrorInvalidKernelImage;
  }
  for (size_t i = 0; i < m.info.kernels.size(); ++i) {
    m.kernel_by_name.emplace(m.info.kernels[i].name, i);
  }
  // Variables get zeroed device memory now, as a GPU allocates them at load.
  // (Initializers in the PTX are not applied: the reference reads layouts,
  // not data.) A zero-sized one still gets a distinct address.
  uint64_t bytes = 0;
  for (size_t i = 0; i < m.info.globals.size(); ++i) {
    const fatbin::global_info& g = m.info.globals[i];
    uint64_t base = 0;
    if (cudaError_t st = allocate("vgpuModuleLoad", std::max<uint64_t>(g.size, 1), &base);
        st != cudaSuccess) {
      for (const uint64_t p : m.global_ptrs) release_block(p);
      return st;
    }
    m.global_ptrs.push_back(base);
    m.global_by_name.emplace(g.name, i);
    bytes += g.size;
  }
  module_globals_.insert(m.global_ptrs.begin(), m.global_ptrs.end());
  spdlog::debug("[reference-executor] vgpuModuleLoad: module {:#x} (its {}): {} kernel(s), {} "
                "variable(s) ({} bytes) (vm={})",
                module, m.info.source, m.info.kernels.size(), m.info.globals.size(), bytes, ctx.vm_id);
  modules_.emplace(module, std::move(m));
  return cudaSuccess;
}

void reference_session::drop_module(std::map<uint64_t, loaded_module>::iterator it) {
  // Its function ids and variables go with it: a later launch or copy naming
  // them is refused instead of reaching what is gone.
  for (const auto& entry : it->second.function_ids) functions_.erase(entry.second);
  for (const uint64_t p : it->second.global_ptrs) {
    module_globals_.erase(p);
    release_block(p);
  }
  modules_.erase(it);
}

cudaError_t reference_session::on_vgpuModuleUnload(call_context& ctx, uint64_t module) {
  const auto it = modules_.find(module);
  if (it == modules_.end()) {
    // An upload the guest abandons: drop what arrived (as the cuda executor does).
    if (uploads_.drop(module)) return cudaSuccess;
    return bad_handle("vgpuModuleUnload", "module", module, ctx);
  }
  drop_module(it);
  return cudaSuccess;
}

cudaError_t reference_session::on_vgpuFunctionGet(call_context& ctx, uint64_t module,
                                                  const_bytes name, mut_bytes layout,
                                                  uint64_t* function, uint32_t* paramCount) {
  *function = 0;
  *paramCount = 0;
  const auto mod = modules_.find(module);
  if (mod == modules_.end()) return bad_handle("vgpuFunctionGet", "module", module, ctx);
  const std::string kernel = name_of(name);
  const auto k = mod->second.kernel_by_name.find(kernel);
  if (k == mod->second.kernel_by_name.end()) {
    spdlog::debug("[reference-executor] vgpuFunctionGet: no kernel '{}' in module {:#x} (vm={})",
                  kernel, module, ctx.vm_id);
    return cudaErrorInvalidDeviceFunction;
  }
  const fatbin::kernel_info& info = mod->second.info.kernels[k->second];
  const uint64_t need = uint64_t{8} * info.params.size();
  if (need > layout.size) {
    spdlog::debug("[reference-executor] vgpuFunctionGet: '{}': {} parameter(s) need {} bytes of "
                  "layout, the area has {} (vm={})",
                  kernel, info.params.size(), need, layout.size, ctx.vm_id);
    return cudaErrorInvalidValue;
  }
  for (size_t i = 0; i < info.params.size(); ++i) {
    const uint32_t pair[2] = {info.params[i].offset, info.params[i].size};
    std::memcpy(layout.data + 8 * i, pair, sizeof pair);
  }
  // One id per kernel, as cuModuleGetFunction returns the same CUfunction:
  // attributes set through one lookup hold for the next.
  auto [id, fresh] = mod->second.function_ids.emplace(k->second, 0);
  if (fresh) id->second = functions_.add(function_state{module, k->second});
  *function = id->second;
  *paramCount = static_cast<uint32_t>(info.params.size());
  return cudaSuccess;
}

cudaError_t reference_session::on_vgpuModuleGetGlobal(call_context& ctx, uint64_t module,
                                                      const_bytes name, uint64_t* dptr,
                                                      uint64_t* bytes) {
  *dptr = 0;
  *bytes = 0;
  const auto mod = modules_.find(module);
  if (mod == modules_.end()) return bad_handle("vgpuModuleGetGlobal", "module", module, ctx);
  const std::string symbol = name_of(name);
  const auto g = mod->second.global_by_name.find(symbol);
  if (g == mod->second.global_by_name.end()) {
    spdlog::debug("[reference-executor] vgpuModuleGetGlobal: no variable '{}' in module {:#x} "
                  "(vm={})",
                  symbol, module, ctx.vm_id);
    return cudaErrorInvalidSymbol;  // what the cuda executor answers for CUDA_ERROR_NOT_FOUND
  }
  *dptr = mod->second.global_ptrs[g->second];
  *bytes = mod->second.info.globals[g->second].size;
  return cudaSuccess;
}

// --- launches -------------------------------------------------------------------

cudaError_t reference_session::on_vgpuLaunchKernel(
    call_context& ctx, uint64_t function, uint32_t gridX, uint32_t gridY, uint32_t gridZ,
    uint32_t blockX, uint32_t blockY, uint32_t blockZ, uint32_t sharedMem, uint64_t stream,
    uint32_t clusterX, uint32_t clusterY, uint32_t clusterZ, uint32_t launchFlags,
    const_bytes params) {
  const function_state* f = functions_.find(function);
  if (f == nullptr) return bad_handle("vgpuLaunchKernel", "function", function, ctx);
  if (!stream_ok(stream)) return bad_handle("vgpuLaunchKernel", "stream", stream, ctx);
  const uint64_t threads = uint64_t{blockX} * blockY * blockZ;
  if (gridX == 0 || gridY == 0 || gridZ == 0 || gridX > kMaxGridX || gridY > kMaxGridYZ ||
      gridZ > kMaxGridYZ || threads == 0 || threads > kMaxThreadsPerBlock ||
      blockZ > kMaxBlockZ) {
    spdlog::debug("[reference-executor] vgpuLaunchKernel: grid ({}, {}, {}) block ({}, {}, {}) "
                  "is outside sm_90's limits (vm={})",
                  gridX, gridY, gridZ, blockX, blockY, blockZ, ctx.vm_id);
    // As the driver does: empty dimensions are a bad configuration, dimensions
    // past the limits a bad value.
    return threads == 0 || gridX == 0 || gridY == 0 || gridZ == 0 ? cudaErrorInvalidConfiguration
                                                                     : cudaErrorInvalidValue;
  }
  if (sharedMem > static_cast<uint32_t>(kMaxDynamicShared)) {
    spdlog::debug("[reference-executor] vgpuLaunchKernel: {} bytes of dynamic shared memory, at "
                  "most {} (vm={})",
                  sharedMem, kMaxDynamicShared, ctx.vm_id);
    return cudaErrorInvalidValue;
  }
  const fatbin::kernel_info& k = kernel_of(*f);
  if (params.size != k.param_bytes) {
    spdlog::debug("[reference-executor] vgpuLaunchKernel: {} parameter bytes, {} takes {} "
                  "(vm={})",
                  params.size, k.name, k.param_bytes, ctx.vm_id);
    return cudaErrorInvalidValue;
  }

  launch_record_header h;
  std::memset(&h, 0, sizeof h);
  h.grid[0] = gridX;
  h.grid[1] = gridY;
  h.grid[2] = gridZ;
  h.block[0] = blockX;
  h.block[1] = blockY;
  h.block[2] = blockZ;
  h.cluster[0] = clusterX;
  h.cluster[1] = clusterY;
  h.cluster[2] = clusterZ;
  h.shared_mem = sharedMem;
  h.launch_flags = launchFlags;
  h.name_len = static_cast<uint32_t>(k.name.size());
  h.param_len = static_cast<uint32_t>(params.size);
  h.stream = stream;
  std::vector<uint8_t> record(sizeof h + k.name.size() + params.size);
  std::memcpy(record.data(), &h, sizeof h);
  std::memcpy(record.data() + sizeof h, k.name.data(), k.name.size());
  if (params.size != 0) {
    std::memcpy(record.data() + sizeof h + k.name.size(), params.data, params.size);
  }
  if (launches_.size() == kLaunchRecords) launches_.pop_front();
  launches_.push_back(std::move(record));

  if (!warned_launch_) {
    warned_launch_ = true;
    spdlog::warn("[reference-executor] kernel launches are recorded, not executed: no GPU "
                 "(vm={})",
                 ctx.vm_id);
  }
  return cudaSuccess;
}

cudaError_t reference_session::on_vgpuDebugLaunchRecord(call_context& ctx, uint32_t index,
                                                        mut_bytes out, uint32_t* size) {
  *size = 0;
  if (index >= launches_.size()) {
    spdlog::debug("[reference-executor] vgpuDebugLaunchRecord: no record {}, {} kept (vm={})",
                  index, launches_.size(), ctx.vm_id);
    return cudaErrorInvalidValue;
  }
  const std::vector<uint8_t>& record = launches_[index];
  if (out.size < record.size()) {
    spdlog::debug("[reference-executor] vgpuDebugLaunchRecord: record {} is {} bytes, the area "
                  "has {} (vm={})",
                  index, record.size(), out.size, ctx.vm_id);
    return cudaErrorInvalidValue;
  }
  std::memcpy(out.data, record.data(), record.size());
  *size = static_cast<uint32_t>(record.size());  // <= 64 + names + 32764 parameter bytes
  return cudaSuccess;
}

// --- function attributes and occupancy ---------------------------------------------

cudaError_t reference_session::on_vgpuFuncGetAttributes(call_context& ctx,
                                                        cudaFuncAttributes* attr,
                                                        uint64_t function) {
  const function_state* f = functions_.find(function);
  if (f == nullptr) return bad_handle("vgpuFuncGetAttributes", "function", function, ctx);
  // A plausible small sm_90 kernel: programs size launches from these.
  cudaFuncAttributes a;
  std::memset(static_cast<void*>(&a), 0, sizeof a);
  a.maxThreadsPerBlock = static_cast<int>(kMaxThreadsPerBlock);
  a.numRegs = 32;
  a.ptxVersion = 90;
  a.binaryVersion = 90;
  a.maxDynamicSharedSizeBytes = f->max_dynamic_shared;
  a.preferredShmemCarveout = f->carveout;
  a.requiredClusterWidth = f->cluster[0];
  a.requiredClusterHeight = f->cluster[1];
  a.requiredClusterDepth = f->cluster[2];
  a.clusterSchedulingPolicyPreference = f->cluster_policy;
  a.nonPortableClusterSizeAllowed = f->non_portable_cluster;
  *attr = a;
  return cudaSuccess;
}

cudaError_t reference_session::on_vgpuFuncSetAttribute(call_context& ctx, uint64_t function,
                                                       int32_t attr, int32_t value) {
  function_state* f = functions_.find(function);
  if (f == nullptr) return bad_handle("vgpuFuncSetAttribute", "function", function, ctx);
  const auto within = [value](int32_t lo, int32_t hi) { return value >= lo && value <= hi; };
  const int32_t max_cluster = f->non_portable_cluster ? kNonPortableCluster : kPortableCluster;
  bool ok = false;
  switch (attr) {
    case cudaFuncAttributeMaxDynamicSharedMemorySize:
      if ((ok = within(0, kMaxDynamicShared))) f->max_dynamic_shared = value;
      break;
    case cudaFuncAttributePreferredSharedMemoryCarveout:
      if ((ok = within(-1, 100))) f->carveout = value;
      break;
    case cudaFuncAttributeRequiredClusterWidth:
    case cudaFuncAttributeRequiredClusterHeight:
    case cudaFuncAttributeRequiredClusterDepth:
      if ((ok = within(0, max_cluster))) {
        f->cluster[attr - cudaFuncAttributeRequiredClusterWidth] = value;
      }
      break;
    case cudaFuncAttributeNonPortableClusterSizeAllowed:
      if ((ok = within(0, 1))) f->non_portable_cluster = value;
      break;
    case cudaFuncAttributeClusterSchedulingPolicyPreference:
      if ((ok = within(cudaClusterSchedulingPolicyDefault,
                       cudaClusterSchedulingPolicyLoadBalancing))) {
        f->cluster_policy = value;
      }
      break;
    default:  // unknown, or read-only (cudaFuncAttributeClusterDimMustBeSet)
      break;
  }
  if (!ok) {
    spdlog::debug("[reference-executor] vgpuFuncSetAttribute: attribute {} = {} refused (vm={})",
                  attr, value, ctx.vm_id);
    return cudaErrorInvalidValue;
  }
  return cudaSuccess;
}

cudaError_t reference_session::on_vgpuOccupancyMaxActiveBlocks(call_context& ctx,
                                                               int32_t* numBlocks,
                                                               uint64_t function,
                                                               int32_t blockSize,
                                                               uint64_t dynamicSMemSize,
                                                               uint32_t flags) {
  *numBlocks = 0;
  if (functions_.find(function) == nullptr) {
    return bad_handle("vgpuOccupancyMaxActiveBlocks", "function", function, ctx);
  }
  if (blockSize <= 0 || blockSize > static_cast<int32_t>(kMaxThreadsPerBlock) ||
      (flags & ~static_cast<uint32_t>(cudaOccupancyDisableCachingOverride)) != 0) {
    spdlog::debug("[reference-executor] vgpuOccupancyMaxActiveBlocks: block size {}, flags {:#x} "
                  "(vm={})",
                  blockSize, flags, ctx.vm_id);
    return cudaErrorInvalidValue;
  }
  // One SM of sm_90: threads are scheduled in whole warps; shared memory
  // divides the SM's 228 KiB, and a block needing more than 227 KiB never fits.
  const int32_t warp_threads = (blockSize + 31) / 32 * 32;
  int32_t n = std::min(kMaxThreadsPerSM / warp_threads, kMaxBlocksPerSM);
  if (dynamicSMemSize > 0) {
    n = dynamicSMemSize > static_cast<uint64_t>(kMaxDynamicShared)
            ? 0
            : std::min<int32_t>(n, static_cast<int32_t>(kSharedPerSM / dynamicSMemSize));
  }
  *numBlocks = n;
  return cudaSuccess;
}

// --- host functions -------------------------------------------------------------------

cudaError_t reference_session::on_vgpuHostFunc(call_context& ctx, uint64_t stream,
                                              uint64_t token) {
  if (!stream_ok(stream)) return bad_handle("vgpuHostFunc", "stream", stream, ctx);
  // Everything earlier in the stream has already run (calls execute in
  // order), so the host function is due now. The worker never waits for the
  // guest to run it: the guest's notify handler does that on its side.
  if (!ctx.notifier) return cudaErrorNotSupported;  // a channel without a notify ring
  if (ctx.notifier->post(token) == 0) {
    spdlog::debug("[reference-executor] vgpuHostFunc: the guest is gone, token {:#x} not posted "
                  "(vm={})",
                  token, ctx.vm_id);
    return cudaErrorDevicesUnavailable;
  }
  return cudaSuccess;
}

}  // namespace vgpu::host::reference
