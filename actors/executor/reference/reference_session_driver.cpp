// The driver API's own calls on the reference executor: virtual memory
// management emulated with the host's VMM (see reference_session.h), and
// cuOccupancyMaxActiveClusters from the advertised sm_90 limits.
#include <sys/mman.h>
#include <unistd.h>

#include <cuda.h>

#include <algorithm>
#include <cstdint>
#include <iterator>

#include <spdlog/spdlog.h>

#include "actors/executor/reference/reference_session.h"

namespace vgpu::host::reference {

namespace {

// What an H100 answers for device memory (minimum and recommended alike).
constexpr uint64_t kGranularity = 2ull << 20;
// Address space one reservation may take (the host's, PROT_NONE until mapped).
constexpr uint64_t kMaxReservation = 1ull << 40;
constexpr int32_t kMaxDevices = 8;  // vmm_mapping::access has one slot per device

// sm_90 limits, as in reference_kernels.cpp.
constexpr uint64_t kMaxThreadsPerSM = 2048;
constexpr uint64_t kSharedPerSM = 228 << 10;
constexpr uint64_t kPortableCluster = 8;

bool overlaps(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen) { return a < b + blen && b < a + alen; }

cudaError_t refuse(const char* call, const char* why, uint64_t ptr, uint64_t size, const call_context& ctx) {
  spdlog::debug("[reference-executor] {}: [0x{:x}, +{}) {} (vm={})", call, ptr, size, why, ctx.vm_id);
  return cudaErrorInvalidValue;
}

}  // namespace

reference_session::vmm_reservation::~vmm_reservation() {
  if (host != nullptr) munmap(host, size);
}

reference_session::vmm_physical::~vmm_physical() {
  if (fd >= 0) close(fd);
  if (state != nullptr) state->release(size);
}

bool reference_session::mapped_covers(uint64_t ptr, uint64_t len) const {
  auto it = mappings_.upper_bound(ptr);
  if (it == mappings_.begin()) return false;
  --it;
  if (ptr - it->first >= it->second.size || len > UINT64_MAX - ptr) return false;
  const uint64_t reservation = it->second.reservation;
  uint64_t end = it->first + it->second.size;
  // Back to back in one reservation: one contiguous host buffer.
  while (end < ptr + len) {
    ++it;
    if (it == mappings_.end() || it->first != end || it->second.reservation != reservation) return false;
    end += it->second.size;
  }
  return true;
}

uint8_t* reference_session::mapped_host_at(uint64_t ptr) {
  if (mappings_.empty()) return nullptr;
  auto it = mappings_.upper_bound(ptr);
  if (it == mappings_.begin()) return nullptr;
  --it;
  if (ptr - it->first >= it->second.size) return nullptr;
  const auto r = reservations_.find(it->second.reservation);
  return r->second->host + (ptr - r->first);
}

cudaError_t reference_session::on_vgpuMemGetAllocationGranularity(call_context&, uint64_t* granularity,
                                                                  int32_t device, uint32_t option) {
  *granularity = 0;
  if (!device_ok(device)) return cudaErrorInvalidDevice;
  if (option != CU_MEM_ALLOC_GRANULARITY_MINIMUM && option != CU_MEM_ALLOC_GRANULARITY_RECOMMENDED) {
    return cudaErrorInvalidValue;
  }
  *granularity = kGranularity;
  return cudaSuccess;
}

cudaError_t reference_session::on_vgpuMemCreate(call_context& ctx, uint64_t* handle, uint64_t size,
                                                int32_t device) {
  *handle = 0;
  if (!device_ok(device)) return cudaErrorInvalidDevice;
  if (size == 0 || size % kGranularity != 0) return refuse("cuMemCreate", "is not granularity-sized", 0, size, ctx);
  auto charge = std::make_shared<memory_charge>(budget_, size, "cuMemCreate");
  if (!charge->ok()) return cudaErrorMemoryAllocation;  // over the VM's memory limit
  if (!state_->reserve(size)) {
    spdlog::debug("[reference-executor] cuMemCreate: {} bytes exceed the memory left (vm={})", size, ctx.vm_id);
    return cudaErrorMemoryAllocation;
  }
  const int fd = memfd_create("vgpu-reference-vmm", MFD_CLOEXEC);
  // Releases the bytes (memory and budget) on any failure, and at cuMemRelease.
  auto p = std::make_unique<vmm_physical>(fd, size, state_.get(), std::move(charge));
  if (fd < 0 || ftruncate(fd, static_cast<off_t>(size)) != 0) {
    spdlog::debug("[reference-executor] cuMemCreate: host memfd of {} bytes refused (vm={})", size, ctx.vm_id);
    return cudaErrorMemoryAllocation;
  }
  *handle = physical_.add(std::move(p));
  return cudaSuccess;
}

cudaError_t reference_session::on_vgpuMemRelease(call_context& ctx, uint64_t handle) {
  // Mappings of it keep their bytes (the host mapping holds the memfd's pages),
  // as the driver keeps memory until the last unmap.
  if (!physical_.erase(handle)) {
    spdlog::debug("[reference-executor] cuMemRelease: no allocation handle {:#x} (vm={})", handle, ctx.vm_id);
    return cudaErrorInvalidResourceHandle;
  }
  return cudaSuccess;
}

cudaError_t reference_session::on_vgpuMemAddressReserve(call_context& ctx, uint64_t* ptr, uint64_t size,
                                                        uint64_t alignment, uint64_t /*addr: a hint*/) {
  *ptr = 0;
  if (size == 0 || size % kGranularity != 0 || size > kMaxReservation) {
    return refuse("cuMemAddressReserve", "is not a granularity-sized reservation", 0, size, ctx);
  }
  if (alignment != 0 && (alignment & (alignment - 1)) != 0) return cudaErrorInvalidValue;
  const uint64_t align = std::max(alignment, kGranularity);
  if (align > kMaxReservation) return cudaErrorInvalidValue;
  void* host = mmap(nullptr, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (host == MAP_FAILED) return cudaErrorMemoryAllocation;
  auto r = std::make_unique<vmm_reservation>(static_cast<uint8_t*>(host), size);
  const uint64_t raw = state_->take_address(size + align);
  if (raw == 0) return cudaErrorMemoryAllocation;
  const uint64_t base = (raw + align - 1) / align * align;
  reservations_.emplace(base, std::move(r));
  *ptr = base;
  return cudaSuccess;
}

cudaError_t reference_session::on_vgpuMemAddressFree(call_context& ctx, uint64_t ptr, uint64_t size) {
  const auto it = reservations_.find(ptr);
  if (it == reservations_.end() || it->second->size != size) {
    return refuse("cuMemAddressFree", "is not a reservation of this session", ptr, size, ctx);
  }
  for (const auto& m : mappings_) {
    if (m.second.reservation == ptr) return refuse("cuMemAddressFree", "is still mapped", ptr, size, ctx);
  }
  reservations_.erase(it);
  return cudaSuccess;
}

cudaError_t reference_session::on_vgpuMemMap(call_context& ctx, uint64_t ptr, uint64_t size, uint64_t offset,
                                             uint64_t handle) {
  const std::unique_ptr<vmm_physical>* p = physical_.find(handle);
  if (p == nullptr) {
    spdlog::debug("[reference-executor] cuMemMap: no allocation handle {:#x} (vm={})", handle, ctx.vm_id);
    return cudaErrorInvalidResourceHandle;
  }
  const vmm_physical& phys = **p;
  // The driver's rules: offset 0, whole granules, inside the allocation.
  if (offset != 0 || size == 0 || size % kGranularity != 0 || size > phys.size || ptr % kGranularity != 0) {
    return refuse("cuMemMap", "is not a valid mapping of the allocation", ptr, size, ctx);
  }
  auto r = reservations_.upper_bound(ptr);
  if (r == reservations_.begin()) return refuse("cuMemMap", "is not inside a reservation", ptr, size, ctx);
  --r;
  const uint64_t at = ptr - r->first;
  if (at >= r->second->size || size > r->second->size - at) {
    return refuse("cuMemMap", "is not inside a reservation", ptr, size, ctx);
  }
  auto next = mappings_.lower_bound(ptr);
  if ((next != mappings_.end() && overlaps(ptr, size, next->first, next->second.size)) ||
      (next != mappings_.begin() && overlaps(ptr, size, std::prev(next)->first, std::prev(next)->second.size))) {
    return refuse("cuMemMap", "overlaps a mapping", ptr, size, ctx);
  }
  void* host = mmap(r->second->host + at, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, phys.fd, 0);
  if (host == MAP_FAILED) return cudaErrorMemoryAllocation;
  mappings_.emplace(ptr, vmm_mapping{size, r->first, {}, phys.charge});
  return cudaSuccess;
}

cudaError_t reference_session::on_vgpuMemUnmap(call_context& ctx, uint64_t ptr, uint64_t size) {
  auto first = mappings_.find(ptr);
  if (first == mappings_.end() || size == 0) return refuse("cuMemUnmap", "is not a mapping", ptr, size, ctx);
  auto it = first;
  uint64_t end = ptr;
  while (it != mappings_.end() && it->first == end && end - ptr < size) {
    end += it->second.size;
    ++it;
  }
  if (end - ptr != size) return refuse("cuMemUnmap", "is not whole mappings", ptr, size, ctx);
  // Back to PROT_NONE address space: the memfd pages are dropped from here.
  uint8_t* host = mapped_host_at(ptr);
  if (mmap(host, size, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0) == MAP_FAILED) {
    return cudaErrorUnknown;
  }
  mappings_.erase(first, it);
  return cudaSuccess;
}

cudaError_t reference_session::on_vgpuMemSetAccess(call_context& ctx, uint64_t ptr, uint64_t size, int32_t device,
                                                   uint32_t flags) {
  if (!device_ok(device) || device >= kMaxDevices) return cudaErrorInvalidDevice;
  if (flags != CU_MEM_ACCESS_FLAGS_PROT_NONE && flags != CU_MEM_ACCESS_FLAGS_PROT_READ &&
      flags != CU_MEM_ACCESS_FLAGS_PROT_READWRITE) {
    return cudaErrorInvalidValue;
  }
  if (size == 0 || !mapped_covers(ptr, size)) return refuse("cuMemSetAccess", "is not mapped", ptr, size, ctx);
  // Recorded per mapping (cuMemGetAccess reads it back); the reference's
  // copies do not enforce it.
  for (auto it = std::prev(mappings_.upper_bound(ptr)); it != mappings_.end() && it->first < ptr + size; ++it) {
    it->second.access[device] = flags;
  }
  return cudaSuccess;
}

cudaError_t reference_session::on_vgpuMemGetAccess(call_context& ctx, uint64_t* flags, uint64_t ptr,
                                                   int32_t device) {
  *flags = 0;
  if (!device_ok(device) || device >= kMaxDevices) return cudaErrorInvalidDevice;
  if (!mapped_covers(ptr, 1)) return refuse("cuMemGetAccess", "is not mapped", ptr, 1, ctx);
  *flags = std::prev(mappings_.upper_bound(ptr))->second.access[device];
  return cudaSuccess;
}

cudaError_t reference_session::on_vgpuOccupancyMaxActiveClusters(call_context& ctx, int32_t* numClusters,
                                                                 uint64_t function, uint32_t /*gridX*/,
                                                                 uint32_t /*gridY*/, uint32_t /*gridZ*/,
                                                                 uint32_t blockX, uint32_t blockY,
                                                                 uint32_t blockZ, uint32_t sharedMem,
                                                                 uint32_t clusterX, uint32_t clusterY,
                                                                 uint32_t clusterZ) {
  *numClusters = 0;
  const function_state* f = functions_.find(function);
  if (f == nullptr) {
    spdlog::debug("[reference-executor] cuOccupancyMaxActiveClusters: no function {:#x} (vm={})", function,
                  ctx.vm_id);
    return cudaErrorInvalidResourceHandle;
  }
  const uint64_t threads = uint64_t{blockX} * blockY * blockZ;
  uint64_t cluster = uint64_t{clusterX} * clusterY * clusterZ;
  if (cluster == 0) cluster = uint64_t(std::max(f->cluster[0], 1)) * std::max(f->cluster[1], 1) * std::max(f->cluster[2], 1);
  const uint64_t max_cluster = f->non_portable_cluster ? 16 : kPortableCluster;
  if (threads == 0 || threads > 1024 || cluster > max_cluster) return cudaErrorInvalidValue;
  // Each SM holds as many blocks as threads and shared memory allow, and a
  // cluster's blocks are co-scheduled (on one SM or several): resident blocks
  // over the cluster size. An estimate of the same shape as the GPU's answer,
  // not its value.
  uint64_t per_sm = kMaxThreadsPerSM / threads;
  if (sharedMem != 0) per_sm = std::min<uint64_t>(per_sm, kSharedPerSM / sharedMem);
  if (per_sm == 0) return cudaSuccess;  // 0 clusters fit, as the driver answers
  const uint64_t sms = static_cast<uint64_t>(std::max(state_->props().multiProcessorCount, 0));
  *numClusters = static_cast<int32_t>(std::min<uint64_t>(per_sm * sms / cluster, INT32_MAX));
  return cudaSuccess;
}

}  // namespace vgpu::host::reference

namespace vgpu::host::reference {

cudaError_t reference_session::on_vgpuPointerGetAttributes(call_context& ctx, uint32_t* type, uint64_t* base,
                                                           uint64_t* size, int32_t* device, uint64_t ptr) {
  *type = 0;
  *base = 0;
  *size = 0;
  *device = -1;
  const auto& all = ledger_.all();  // allocations and module variables
  auto it = all.upper_bound(ptr);
  if (it != all.begin() && ptr - std::prev(it)->first < std::prev(it)->second) {
    --it;
    *base = it->first;
    *size = it->second;
  } else {
    auto m = mappings_.upper_bound(ptr);
    if (m == mappings_.begin() || ptr - std::prev(m)->first >= std::prev(m)->second.size) return cudaSuccess;
    --m;
    *base = m->first;
    *size = m->second.size;
  }
  *type = CU_MEMORYTYPE_DEVICE;
  *device = ctx.device;  // one configured device model serves every ordinal
  return cudaSuccess;
}

}  // namespace vgpu::host::reference

namespace vgpu::host::reference {

// Stream-ordered allocation: everything runs at once here, so an
// asynchronous allocation is an allocation and its free a free.
cudaError_t reference_session::on_vgpuMallocAsync(call_context& ctx, uint64_t* ptr, uint64_t size, uint64_t stream) {
  *ptr = 0;
  if (!stream_ok(stream)) {
    spdlog::debug("[reference-executor] cudaMallocAsync: no stream {:#x} (vm={})", stream, ctx.vm_id);
    return cudaErrorInvalidResourceHandle;
  }
  return on_cudaMalloc(ctx, ptr, size);
}

cudaError_t reference_session::on_vgpuFreeAsync(call_context& ctx, uint64_t ptr, uint64_t stream) {
  if (!stream_ok(stream)) {
    spdlog::debug("[reference-executor] cudaFreeAsync: no stream {:#x} (vm={})", stream, ctx.vm_id);
    return cudaErrorInvalidResourceHandle;
  }
  return on_cudaFree(ctx, ptr);
}

}  // namespace vgpu::host::reference
