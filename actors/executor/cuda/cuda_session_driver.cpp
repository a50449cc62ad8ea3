// The driver API's calls that the runtime's wire calls cannot express, on a
// real GPU: virtual memory management (cuMemCreate, cuMemAddressReserve,
// cuMemMap, cuMemSetAccess, ...) and cuOccupancyMaxActiveClusters.
//
// Everything runs in the session's context, and physical memory lives on the
// session's GPU (device_) whichever valid ordinal the guest names, as
// cudaMalloc's does: a guest never allocates on a GPU it was not placed on.
// Reservations, mappings and
// physical handles are the session's own tables: a guest can only unmap,
// release or free what it created here, and a mapped range is reachable by
// copies, memsets and launches (check_range) only while it is mapped.
#include <iterator>

#include <spdlog/spdlog.h>

#include "actors/executor/cuda/cuda_errors.h"
#include "actors/executor/cuda/cuda_session.h"

namespace vgpu::host::cuda {

namespace {

// The session's context, current on this worker thread (as every handler in
// cuda_session.cpp does first; worker threads serve many sessions).
CUresult enter(CUcontext ctx) {
  CUcontext current = nullptr;
  if (cuCtxGetCurrent(&current) == CUDA_SUCCESS && current == ctx) return CUDA_SUCCESS;
  return cuCtxSetCurrent(ctx);
}

// The only kind of physical memory vgpu hands out: device memory of `device`,
// not exportable (no OS handle could reach the guest anyway).
CUmemAllocationProp device_memory(int device) {
  CUmemAllocationProp prop{};
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.requestedHandleTypes = CU_MEM_HANDLE_TYPE_NONE;
  prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  prop.location.id = device;
  return prop;
}

bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen) {
  return a < b + blen && b < a + alen;
}

}  // namespace

#define VGPU_DRIVER_ENTER(c)                                                      \
  if (const CUresult cur_ = enter(ctx_.get()); cur_ != CUDA_SUCCESS)              \
  return check(cur_, "cuCtxSetCurrent", c)

bool cuda_session::mapped_covers(uint64_t ptr, uint64_t len) const {
  auto it = mappings_.upper_bound(ptr);
  if (it == mappings_.begin()) return false;
  --it;
  if (ptr - it->first >= it->second.size) return false;
  const uint64_t reservation = it->second.reservation;
  uint64_t end = it->first + it->second.size;  // mapped up to here
  if (len > UINT64_MAX - ptr) return false;
  const uint64_t want = ptr + len;
  // Chunks mapped back to back in one reservation are one buffer.
  while (end < want) {
    ++it;
    if (it == mappings_.end() || it->first != end || it->second.reservation != reservation) return false;
    end += it->second.size;
  }
  return true;
}

void cuda_session::release_vmm() {
  for (const auto& [base, m] : mappings_) {
    if (const CUresult r = cuMemUnmap(static_cast<CUdeviceptr>(base), m.size); r != CUDA_SUCCESS) {
      spdlog::debug("[cuda-executor] cuMemUnmap(0x{:x}, {}) at close failed: {}", base, m.size, error_name(r));
    }
  }
  mappings_.clear();
  for (const auto& [id, p] : physical_.all()) {
    if (const CUresult r = cuMemRelease(p.handle); r != CUDA_SUCCESS) {
      spdlog::debug("[cuda-executor] cuMemRelease({:#x}) at close failed: {}", id, error_name(r));
    }
  }
  physical_.all().clear();
  for (const auto& [base, size] : reservations_) {
    if (const CUresult r = cuMemAddressFree(static_cast<CUdeviceptr>(base), size); r != CUDA_SUCCESS) {
      spdlog::debug("[cuda-executor] cuMemAddressFree(0x{:x}, {}) at close failed: {}", base, size,
                    error_name(r));
    }
  }
  reservations_.clear();
  state_->used.fetch_sub(physical_bytes_, std::memory_order_relaxed);
  physical_bytes_ = 0;
}

cudaError_t cuda_session::on_vgpuMemGetAllocationGranularity(call_context& c, uint64_t* granularity,
                                                             int32_t device, uint32_t option) {
  VGPU_DRIVER_ENTER(c);
  if (!state_->device_ok(device)) return cudaErrorInvalidDevice;
  if (option != CU_MEM_ALLOC_GRANULARITY_MINIMUM && option != CU_MEM_ALLOC_GRANULARITY_RECOMMENDED) {
    return cudaErrorInvalidValue;
  }
  const CUmemAllocationProp prop = device_memory(device_);
  size_t g = 0;
  const cudaError_t st =
      check(cuMemGetAllocationGranularity(&g, &prop, static_cast<CUmemAllocationGranularity_flags>(option)),
            "cuMemGetAllocationGranularity", c);
  *granularity = g;
  return st;
}

cudaError_t cuda_session::on_vgpuMemCreate(call_context& c, uint64_t* handle, uint64_t size, int32_t device) {
  VGPU_DRIVER_ENTER(c);
  *handle = 0;
  if (!state_->device_ok(device)) return cudaErrorInvalidDevice;
  if (size == 0) return cudaErrorInvalidValue;
  const CUmemAllocationProp prop = device_memory(device_);
  auto charge = std::make_shared<memory_charge>(budget_, size, "cuMemCreate");
  if (!charge->ok()) return cudaErrorMemoryAllocation;  // over the VM's memory limit
  CUmemGenericAllocationHandle h = 0;
  // The driver checks the size against the granularity.
  if (cudaError_t st = check(cuMemCreate(&h, size, &prop, 0), "cuMemCreate", c); st != cudaSuccess) return st;
  *handle = physical_.add(physical_alloc{h, size, std::move(charge)});
  physical_bytes_ += size;
  state_->used.fetch_add(size, std::memory_order_relaxed);
  spdlog::debug("[cuda-executor] cuMemCreate: {} bytes on GPU {} as handle {:#x} (vm={})", size, device_, *handle,
                c.vm_id);
  return cudaSuccess;
}

cudaError_t cuda_session::on_vgpuMemRelease(call_context& c, uint64_t handle) {
  VGPU_DRIVER_ENTER(c);
  const physical_alloc* p = physical_.find(handle);
  if (p == nullptr) return bad_handle("cuMemRelease", "allocation handle", handle, c);
  // Allowed while mapped: the driver frees the memory at its last unmap, and
  // the mappings (in mappings_) no longer need the handle.
  if (cudaError_t st = check(cuMemRelease(p->handle), "cuMemRelease", c); st != cudaSuccess) return st;
  physical_bytes_ -= p->size;
  state_->used.fetch_sub(p->size, std::memory_order_relaxed);
  physical_.erase(handle);
  return cudaSuccess;
}

cudaError_t cuda_session::on_vgpuMemAddressReserve(call_context& c, uint64_t* ptr, uint64_t size,
                                                   uint64_t alignment, uint64_t addr) {
  VGPU_DRIVER_ENTER(c);
  *ptr = 0;
  if (size == 0) return cudaErrorInvalidValue;
  CUdeviceptr p = 0;
  // `addr` is only a hint, in the session's own address space: the driver
  // picks another address when it is taken.
  if (cudaError_t st = check(cuMemAddressReserve(&p, size, alignment, static_cast<CUdeviceptr>(addr), 0),
                             "cuMemAddressReserve", c);
      st != cudaSuccess) {
    return st;
  }
  reservations_.emplace(p, size);
  *ptr = p;
  return cudaSuccess;
}

cudaError_t cuda_session::on_vgpuMemAddressFree(call_context& c, uint64_t ptr, uint64_t size) {
  VGPU_DRIVER_ENTER(c);
  const auto it = reservations_.find(ptr);
  if (it == reservations_.end() || it->second != size) {
    spdlog::debug("[cuda-executor] cuMemAddressFree: [0x{:x}, +{}) is not a reservation of this session (vm={})",
                  ptr, size, c.vm_id);
    return cudaErrorInvalidValue;
  }
  // Never free address space under live mappings: they would stay in
  // mappings_ (and so reachable) with nothing behind them.
  for (const auto& [base, m] : mappings_) {
    if (m.reservation == ptr) {
      spdlog::debug("[cuda-executor] cuMemAddressFree: 0x{:x} still has a mapping at 0x{:x} (vm={})", ptr, base,
                    c.vm_id);
      return cudaErrorInvalidValue;
    }
  }
  if (cudaError_t st = check(cuMemAddressFree(static_cast<CUdeviceptr>(ptr), size), "cuMemAddressFree", c);
      st != cudaSuccess) {
    return st;
  }
  reservations_.erase(it);
  return cudaSuccess;
}

cudaError_t cuda_session::on_vgpuMemMap(call_context& c, uint64_t ptr, uint64_t size, uint64_t offset,
                                        uint64_t handle) {
  VGPU_DRIVER_ENTER(c);
  const physical_alloc* p = physical_.find(handle);
  if (p == nullptr) return bad_handle("cuMemMap", "allocation handle", handle, c);
  if (size == 0 || offset > p->size || size > p->size - offset || ptr > UINT64_MAX - size) {
    return cudaErrorInvalidValue;
  }
  // Inside one reservation of this session, over no existing mapping.
  auto r = reservations_.upper_bound(ptr);
  if (r == reservations_.begin()) return cudaErrorInvalidValue;
  --r;
  if (ptr - r->first >= r->second || size > r->second - (ptr - r->first)) {
    spdlog::debug("[cuda-executor] cuMemMap: [0x{:x}, +{}) is not inside a reservation of this session (vm={})",
                  ptr, size, c.vm_id);
    return cudaErrorInvalidValue;
  }
  auto next = mappings_.lower_bound(ptr);
  if (next != mappings_.end() && overlaps(ptr, size, next->first, next->second.size)) return cudaErrorInvalidValue;
  if (next != mappings_.begin()) {
    auto prev = std::prev(next);
    if (overlaps(ptr, size, prev->first, prev->second.size)) return cudaErrorInvalidValue;
  }
  if (cudaError_t st = check(cuMemMap(static_cast<CUdeviceptr>(ptr), size, offset, p->handle, 0), "cuMemMap", c);
      st != cudaSuccess) {
    return st;
  }
  mappings_.emplace(ptr, vmm_mapping{size, r->first, p->charge});
  return cudaSuccess;
}

cudaError_t cuda_session::on_vgpuMemUnmap(call_context& c, uint64_t ptr, uint64_t size) {
  VGPU_DRIVER_ENTER(c);
  // The range must be whole mappings, back to back (llama.cpp's pool unmaps
  // all its chunks with one call); a partial unmap is refused as the driver does.
  auto first = mappings_.find(ptr);
  if (first == mappings_.end() || size == 0) return cudaErrorInvalidValue;
  auto it = first;
  uint64_t end = ptr;
  while (it != mappings_.end() && it->first == end && end - ptr < size) {
    end += it->second.size;
    ++it;
  }
  if (end - ptr != size) {
    spdlog::debug("[cuda-executor] cuMemUnmap: [0x{:x}, +{}) is not whole mappings of this session (vm={})", ptr,
                  size, c.vm_id);
    return cudaErrorInvalidValue;
  }
  if (cudaError_t st = check(cuMemUnmap(static_cast<CUdeviceptr>(ptr), size), "cuMemUnmap", c); st != cudaSuccess) {
    return st;
  }
  mappings_.erase(first, it);
  return cudaSuccess;
}

cudaError_t cuda_session::on_vgpuMemSetAccess(call_context& c, uint64_t ptr, uint64_t size, int32_t device,
                                              uint32_t flags) {
  VGPU_DRIVER_ENTER(c);
  if (!state_->device_ok(device)) return cudaErrorInvalidDevice;
  if (flags != CU_MEM_ACCESS_FLAGS_PROT_NONE && flags != CU_MEM_ACCESS_FLAGS_PROT_READ &&
      flags != CU_MEM_ACCESS_FLAGS_PROT_READWRITE) {
    return cudaErrorInvalidValue;
  }
  if (size == 0 || !mapped_covers(ptr, size)) {
    spdlog::debug("[cuda-executor] cuMemSetAccess: [0x{:x}, +{}) is not mapped in this session (vm={})", ptr, size,
                  c.vm_id);
    return cudaErrorInvalidValue;
  }
  CUmemAccessDesc desc{};
  desc.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  desc.location.id = device_;
  desc.flags = static_cast<CUmemAccess_flags>(flags);
  return check(cuMemSetAccess(static_cast<CUdeviceptr>(ptr), size, &desc, 1), "cuMemSetAccess", c);
}

cudaError_t cuda_session::on_vgpuMemGetAccess(call_context& c, uint64_t* flags, uint64_t ptr, int32_t device) {
  VGPU_DRIVER_ENTER(c);
  *flags = 0;
  if (!state_->device_ok(device)) return cudaErrorInvalidDevice;
  if (!mapped_covers(ptr, 1)) return cudaErrorInvalidValue;
  CUmemLocation loc{};
  loc.type = CU_MEM_LOCATION_TYPE_DEVICE;
  loc.id = device_;
  unsigned long long f = 0;
  const cudaError_t st = check(cuMemGetAccess(&f, &loc, static_cast<CUdeviceptr>(ptr)), "cuMemGetAccess", c);
  *flags = f;
  return st;
}

cudaError_t cuda_session::on_vgpuOccupancyMaxActiveClusters(call_context& c, int32_t* numClusters,
                                                            uint64_t function, uint32_t gridX, uint32_t gridY,
                                                            uint32_t gridZ, uint32_t blockX, uint32_t blockY,
                                                            uint32_t blockZ, uint32_t sharedMem,
                                                            uint32_t clusterX, uint32_t clusterY,
                                                            uint32_t clusterZ) {
  VGPU_DRIVER_ENTER(c);
  *numClusters = 0;
  const function_entry* f = find_function(function);
  if (f == nullptr) return bad_handle("cuOccupancyMaxActiveClusters", "function", function, c);
  // The configuration is built here from values: no guest pointer (the guest's
  // CUlaunchConfig and its attribute array) ever reaches the driver.
  CUlaunchAttribute attr{};
  CUlaunchConfig cfg{};
  cfg.gridDimX = gridX;
  cfg.gridDimY = gridY;
  cfg.gridDimZ = gridZ;
  cfg.blockDimX = blockX;
  cfg.blockDimY = blockY;
  cfg.blockDimZ = blockZ;
  cfg.sharedMemBytes = sharedMem;
  cfg.hStream = nullptr;
  if (uint64_t{clusterX} * clusterY * clusterZ > 0) {
    attr.id = CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION;
    attr.value.clusterDim.x = clusterX;
    attr.value.clusterDim.y = clusterY;
    attr.value.clusterDim.z = clusterZ;
    cfg.attrs = &attr;
    cfg.numAttrs = 1;
  }
  int n = 0;
  // A kernel not loaded yet (lazy loading) is loaded and asked once more, as
  // with_loaded() does in cuda_session.cpp.
  CUresult r = cuOccupancyMaxActiveClusters(&n, f->fn, &cfg);
  if (r == CUDA_ERROR_FUNCTION_NOT_LOADED && cuFuncLoad(f->fn) == CUDA_SUCCESS) {
    r = cuOccupancyMaxActiveClusters(&n, f->fn, &cfg);
  }
  const cudaError_t st = check(r, "cuOccupancyMaxActiveClusters", c);
  *numClusters = n;
  return st;
}

}  // namespace vgpu::host::cuda

namespace vgpu::host::cuda {

cudaError_t cuda_session::on_vgpuPointerGetAttributes(call_context& /*c*/, uint32_t* type, uint64_t* base,
                                                      uint64_t* size, int32_t* device, uint64_t ptr) {
  // Answered from the session's own tables (never the driver's view of a
  // guest-chosen address): allocations, module variables, VMM mappings.
  *type = 0;
  *base = 0;
  *size = 0;
  *device = -1;
  const auto find_in = [&](const std::map<uint64_t, uint64_t>& m) {
    auto it = m.upper_bound(ptr);
    if (it == m.begin()) return false;
    --it;
    if (ptr - it->first >= it->second) return false;
    *base = it->first;
    *size = it->second;
    return true;
  };
  bool found = find_in(ledger_.all()) || find_in(globals_.all());
  if (!found) {
    auto it = mappings_.upper_bound(ptr);
    if (it != mappings_.begin() && ptr - std::prev(it)->first < std::prev(it)->second.size) {
      --it;
      *base = it->first;
      *size = it->second.size;
      found = true;
    }
  }
  if (found) {
    *type = CU_MEMORYTYPE_DEVICE;
    *device = device_;
  }
  return cudaSuccess;
}

}  // namespace vgpu::host::cuda

namespace vgpu::host::cuda {

// --- stream-ordered allocation ---------------------------------------------------
// The context's default memory pool, in stream order. The pointer exists as
// soon as cuMemAllocAsync returns, so the reply goes out at once (nothing
// waits for the stream). cuMemFree frees such memory too: the session's
// teardown and cudaFree need no second path.

cudaError_t cuda_session::on_vgpuMallocAsync(call_context& c, uint64_t* ptr, uint64_t size, uint64_t stream) {
  VGPU_DRIVER_ENTER(c);
  *ptr = 0;
  CUstream s = nullptr;
  if (!resolve_stream(stream, &s)) return bad_handle("cudaMallocAsync", "stream", stream, c);
  if (size == 0) return cudaSuccess;
  memory_charge charge(budget_, size, "cuMemAllocAsync");
  if (!charge.ok()) return cudaErrorMemoryAllocation;  // over the VM's memory limit
  CUdeviceptr p = 0;
  if (cudaError_t st = check(cuMemAllocAsync(&p, size, s), "cuMemAllocAsync", c); st != cudaSuccess) return st;
  charge.keep();  // cudaFreeAsync, cudaFree or the session's end gives it back
  ledger_.add(p, size);
  state_->used.fetch_add(size, std::memory_order_relaxed);
  *ptr = p;
  return cudaSuccess;
}

cudaError_t cuda_session::on_vgpuFreeAsync(call_context& c, uint64_t ptr, uint64_t stream) {
  VGPU_DRIVER_ENTER(c);
  CUstream s = nullptr;
  if (!resolve_stream(stream, &s)) return bad_handle("cudaFreeAsync", "stream", stream, c);
  if (ptr == 0) return cudaSuccess;
  const auto it = ledger_.all().find(ptr);
  if (it == ledger_.all().end()) {
    spdlog::debug("[cuda-executor] cudaFreeAsync: 0x{:x} is not an allocation of this session (vm={})", ptr,
                  c.vm_id);
    return cudaErrorInvalidValue;
  }
  const uint64_t size = it->second;
  if (cudaError_t st = check(cuMemFreeAsync(static_cast<CUdeviceptr>(ptr), s), "cuMemFreeAsync", c);
      st != cudaSuccess) {
    return st;  // still in the ledger: freed with the session at the latest
  }
  // Out of the ledger now: every call the guest made before this one was
  // checked already, and nothing after it may name the memory.
  ledger_.remove(ptr);
  state_->used.fetch_sub(size, std::memory_order_relaxed);
  // Back in the budget at once, though the pool may hand the bytes out again
  // only when the stream gets there: the budget counts what the guest holds.
  budget_.refund(size);
  return cudaSuccess;
}

}  // namespace vgpu::host::cuda

#undef VGPU_DRIVER_ENTER
