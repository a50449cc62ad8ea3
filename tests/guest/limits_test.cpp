// vgpu-limits-test: a guest of a mediator started with a memory limit
// ([vm.<id>] memory-limit-mb, or mediator.local-memory-limit-mb for local
// processes) checks that the limit is enforced on every kind of allocation and
// reported alike by cudaMemGetInfo, cuMemGetInfo and NVML. One PASS/FAIL line
// per check; exit code 1 on any FAIL.
//
//   vgpu-limits-test --limit-mb N              every check, alone in the VM
//   vgpu-limits-test --limit-mb N --hold-mb H --release-file F
//       allocates H MiB, prints HOLDING, waits until F exists, then exits
//       WITHOUT freeing (the mediator must give the VM its share back)
//   vgpu-limits-test --limit-mb N --others-mb H
//       while another process of the same VM holds H MiB: this one sees
//       limit - H free and can allocate exactly that much
//   --wait-free    first wait (up to 60 s) until the VM holds nothing
//                  (a process before this one has just exited)
//
// The limit must be below the GPU's memory (total = min(limit, real total)),
// a multiple of 16 MiB and at least 64 MiB.
#include <cuda.h>
#include <cuda_runtime_api.h>
#include <dlfcn.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "shim/nvml/nvml_abi.h"

namespace {

constexpr uint64_t kMiB = 1ull << 20;
constexpr uint64_t kChunk = 16 * kMiB;  // a multiple of every VMM granularity (2 MiB)

int g_failures = 0;

// NVML, loaded at run time: vgpu's libnvidia-ml.so.1 (beside its libcudart)
// through LD_LIBRARY_PATH, as an application that uses NVML finds it.
struct nvml_api {
  decltype(&nvmlInit_v2) init = nullptr;
  decltype(&nvmlShutdown) shutdown = nullptr;
  decltype(&nvmlDeviceGetHandleByIndex_v2) handle = nullptr;
  decltype(&nvmlDeviceGetMemoryInfo) memory = nullptr;
  decltype(&nvmlDeviceGetMemoryInfo_v2) memory_v2 = nullptr;
  bool load() {
    void* lib = dlopen("libnvidia-ml.so.1", RTLD_NOW);
    if (lib == nullptr) return false;
    init = reinterpret_cast<decltype(init)>(dlsym(lib, "nvmlInit_v2"));
    shutdown = reinterpret_cast<decltype(shutdown)>(dlsym(lib, "nvmlShutdown"));
    handle = reinterpret_cast<decltype(handle)>(dlsym(lib, "nvmlDeviceGetHandleByIndex_v2"));
    memory = reinterpret_cast<decltype(memory)>(dlsym(lib, "nvmlDeviceGetMemoryInfo"));
    memory_v2 = reinterpret_cast<decltype(memory_v2)>(dlsym(lib, "nvmlDeviceGetMemoryInfo_v2"));
    return init && shutdown && handle && memory && memory_v2;
  }
};
nvml_api g_nvml;

bool check(bool ok, const std::string& what, const std::string& detail = "") {
  std::printf("%s %s%s%s\n", ok ? "PASS" : "FAIL", what.c_str(), (!ok && !detail.empty()) ? ": " : "",
              ok ? "" : detail.c_str());
  std::fflush(stdout);
  if (!ok) ++g_failures;
  return ok;
}

std::string mib(uint64_t b) { return std::to_string(b / kMiB) + " MiB (" + std::to_string(b) + " bytes)"; }

std::string cu_name(CUresult r) {
  const char* n = nullptr;
  cuGetErrorName(r, &n);
  return n ? n : std::to_string(static_cast<int>(r));
}

// The three views of device 0's memory.
struct views {
  bool ok = false;
  uint64_t rt_free = 0, rt_total = 0, cu_free = 0, cu_total = 0, nv_free = 0, nv_total = 0, nv2_free = 0,
           nv2_total = 0;
};

views read_views(nvmlDevice_t dev) {
  views v;
  size_t f = 0, t = 0;
  if (cudaMemGetInfo(&f, &t) != cudaSuccess) return v;
  v.rt_free = f;
  v.rt_total = t;
  if (cuMemGetInfo(&f, &t) != CUDA_SUCCESS) return v;
  v.cu_free = f;
  v.cu_total = t;
  nvmlMemory_t m{};
  if (g_nvml.memory(dev, &m) != NVML_SUCCESS) return v;
  v.nv_free = m.free;
  v.nv_total = m.total;
  nvmlMemory_v2_t m2{};
  m2.version = nvmlMemory_v2;
  if (g_nvml.memory_v2(dev, &m2) != NVML_SUCCESS) return v;
  v.nv2_free = m2.free;
  v.nv2_total = m2.total;
  v.ok = true;
  return v;
}

// All three report total = limit and free = `free` (what this VM has left).
void check_views(nvmlDevice_t dev, uint64_t limit, uint64_t free, const std::string& when) {
  const views v = read_views(dev);
  if (!check(v.ok, when + ": cudaMemGetInfo, cuMemGetInfo, nvmlDeviceGetMemoryInfo(_v2) answer")) return;
  check(v.rt_total == limit && v.cu_total == limit && v.nv_total == limit && v.nv2_total == limit,
        when + ": total is the limit " + mib(limit) + " in all three",
        "cudart " + mib(v.rt_total) + ", driver " + mib(v.cu_total) + ", nvml " + mib(v.nv_total) + ", nvml_v2 " +
            mib(v.nv2_total));
  check(v.rt_free == free && v.cu_free == free && v.nv_free == free && v.nv2_free == free,
        when + ": free is " + mib(free) + " in all three",
        "cudart " + mib(v.rt_free) + ", driver " + mib(v.cu_free) + ", nvml " + mib(v.nv_free) + ", nvml_v2 " +
            mib(v.nv2_free));
}

// cudaMalloc'd chunks, freed on scope exit.
struct ballast {
  std::vector<void*> ptrs;
  ~ballast() { release(); }
  bool fill(uint64_t bytes) {
    for (uint64_t done = 0; done < bytes; done += kChunk) {
      void* p = nullptr;
      if (cudaMalloc(&p, kChunk) != cudaSuccess) return false;
      ptrs.push_back(p);
    }
    return true;
  }
  void release() {
    for (void* p : ptrs) cudaFree(p);
    ptrs.clear();
  }
};

// cudaMalloc: the limit in chunks succeeds, one more chunk (and one byte) fails, a free makes room.
void malloc_checks(nvmlDevice_t dev, uint64_t limit) {
  ballast b;
  check(b.fill(limit), "cudaMalloc: " + mib(limit) + " in 16 MiB chunks fit the limit");
  check_views(dev, limit, 0, "at the limit");
  void* p = nullptr;
  cudaError_t st = cudaMalloc(&p, kChunk);
  check(st == cudaErrorMemoryAllocation && p == nullptr, "cudaMalloc past the limit: cudaErrorMemoryAllocation",
        cudaGetErrorName(st));
  st = cudaMalloc(&p, 1);
  check(st == cudaErrorMemoryAllocation, "cudaMalloc of 1 byte past the limit: cudaErrorMemoryAllocation",
        cudaGetErrorName(st));
  cudaGetLastError();  // not sticky, as NVIDIA's: clear it for the checks below
  check(cudaFree(b.ptrs.back()) == cudaSuccess, "cudaFree of one chunk");
  b.ptrs.pop_back();
  check_views(dev, limit, kChunk, "after freeing one chunk");
  st = cudaMalloc(&p, kChunk);
  check(st == cudaSuccess, "cudaMalloc fits again after the free", cudaGetErrorName(st));
  if (st == cudaSuccess) b.ptrs.push_back(p);
  b.release();
  check_views(dev, limit, limit, "after freeing everything");
}

// cuMemAlloc with all but one chunk taken by cudaMalloc.
void driver_alloc_checks(nvmlDevice_t dev, uint64_t limit) {
  ballast b;
  check(b.fill(limit - kChunk), "ballast of limit - 16 MiB (cudaMalloc)");
  CUdeviceptr p = 0;
  CUresult r = cuMemAlloc(&p, kChunk);
  check(r == CUDA_SUCCESS, "cuMemAlloc of the last 16 MiB", cu_name(r));
  CUdeviceptr q = 0;
  const CUresult r2 = cuMemAlloc(&q, kChunk);
  check(r2 == CUDA_ERROR_OUT_OF_MEMORY, "cuMemAlloc past the limit: CUDA_ERROR_OUT_OF_MEMORY", cu_name(r2));
  if (r2 == CUDA_SUCCESS) cuMemFree(q);
  if (r == CUDA_SUCCESS) check(cuMemFree(p) == CUDA_SUCCESS, "cuMemFree");
  r = cuMemAlloc(&p, kChunk);
  check(r == CUDA_SUCCESS, "cuMemAlloc fits again after cuMemFree", cu_name(r));
  if (r == CUDA_SUCCESS) cuMemFree(p);
  b.release();
  check_views(dev, limit, limit, "after the cuMemAlloc checks");
}

// cuMemCreate (VMM physical memory), and that a released but still mapped
// allocation keeps its bytes (the driver frees it only at the last unmap).
void vmm_checks(nvmlDevice_t dev, uint64_t limit) {
  CUmemAllocationProp prop{};
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  prop.location.id = 0;
  ballast b;
  check(b.fill(limit - kChunk), "ballast of limit - 16 MiB (cudaMalloc)");
  CUmemGenericAllocationHandle h = 0;
  CUresult r = cuMemCreate(&h, kChunk, &prop, 0);
  check(r == CUDA_SUCCESS, "cuMemCreate of the last 16 MiB", cu_name(r));
  CUmemGenericAllocationHandle h2 = 0;
  const CUresult r2 = cuMemCreate(&h2, kChunk, &prop, 0);
  check(r2 == CUDA_ERROR_OUT_OF_MEMORY, "cuMemCreate past the limit: CUDA_ERROR_OUT_OF_MEMORY", cu_name(r2));
  if (r2 == CUDA_SUCCESS) cuMemRelease(h2);
  if (r != CUDA_SUCCESS) return;
  b.release();
  check_views(dev, limit, limit - kChunk, "with a cuMemCreate'd 16 MiB");
  // Mapped, then released: still held until unmapped.
  CUdeviceptr va = 0;
  if (!check(cuMemAddressReserve(&va, kChunk, 0, 0, 0) == CUDA_SUCCESS, "cuMemAddressReserve")) return;
  check(cuMemMap(va, kChunk, 0, h, 0) == CUDA_SUCCESS, "cuMemMap");
  check(cuMemRelease(h) == CUDA_SUCCESS, "cuMemRelease while mapped");
  check_views(dev, limit, limit - kChunk, "released but still mapped");
  check(cuMemUnmap(va, kChunk) == CUDA_SUCCESS, "cuMemUnmap");
  check(cuMemAddressFree(va, kChunk) == CUDA_SUCCESS, "cuMemAddressFree");
  check_views(dev, limit, limit, "after the last unmap");
  r = cuMemCreate(&h, limit, &prop, 0);
  check(r == CUDA_SUCCESS, "cuMemCreate of the whole limit after the unmap", cu_name(r));
  if (r == CUDA_SUCCESS) cuMemRelease(h);
}

// Stream-ordered allocation.
void async_checks(nvmlDevice_t dev, uint64_t limit) {
  cudaStream_t s = nullptr;
  if (!check(cudaStreamCreate(&s) == cudaSuccess, "cudaStreamCreate")) return;
  ballast b;
  check(b.fill(limit - kChunk), "ballast of limit - 16 MiB (cudaMalloc)");
  void* p = nullptr;
  cudaError_t st = cudaMallocAsync(&p, kChunk, s);
  check(st == cudaSuccess, "cudaMallocAsync of the last 16 MiB", cudaGetErrorName(st));
  void* q = nullptr;
  const cudaError_t st2 = cudaMallocAsync(&q, kChunk, s);
  check(st2 == cudaErrorMemoryAllocation, "cudaMallocAsync past the limit: cudaErrorMemoryAllocation",
        cudaGetErrorName(st2));
  if (st2 == cudaSuccess) cudaFreeAsync(q, s);
  cudaGetLastError();
  CUdeviceptr d = 0;
  const CUresult r = cuMemAllocAsync(&d, kChunk, reinterpret_cast<CUstream>(s));
  check(r == CUDA_ERROR_OUT_OF_MEMORY, "cuMemAllocAsync past the limit: CUDA_ERROR_OUT_OF_MEMORY", cu_name(r));
  if (st == cudaSuccess) check(cudaFreeAsync(p, s) == cudaSuccess, "cudaFreeAsync");
  check(cudaStreamSynchronize(s) == cudaSuccess, "cudaStreamSynchronize");
  st = cudaMallocAsync(&p, kChunk, s);
  check(st == cudaSuccess, "cudaMallocAsync fits again after cudaFreeAsync", cudaGetErrorName(st));
  if (st == cudaSuccess) cudaFreeAsync(p, s);
  cudaStreamSynchronize(s);
  b.release();
  cudaStreamDestroy(s);
  check_views(dev, limit, limit, "after the stream-ordered checks");
}

// Polls until this VM holds nothing (the process before this one has exited
// and the mediator has ended its session); a hang guard, not a timing check.
bool wait_free(uint64_t limit) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  size_t f = 0, t = 0;
  while (std::chrono::steady_clock::now() < deadline) {
    if (cudaMemGetInfo(&f, &t) == cudaSuccess && f == limit) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::printf("still %zu bytes free of %zu after 60 s\n", f, t);
  return false;
}

uint64_t number(const char* s) { return std::strtoull(s, nullptr, 10); }

}  // namespace

int main(int argc, char** argv) {
  uint64_t limit = 0, hold = 0, others = 0;
  std::string release_file;
  bool wait = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--limit-mb" && i + 1 < argc) {
      limit = number(argv[++i]) * kMiB;
    } else if (a == "--hold-mb" && i + 1 < argc) {
      hold = number(argv[++i]) * kMiB;
    } else if (a == "--others-mb" && i + 1 < argc) {
      others = number(argv[++i]) * kMiB;
    } else if (a == "--release-file" && i + 1 < argc) {
      release_file = argv[++i];
    } else if (a == "--wait-free") {
      wait = true;
    } else {
      std::fprintf(stderr, "usage: %s --limit-mb N [--hold-mb H --release-file F | --others-mb H] [--wait-free]\n",
                   argv[0]);
      return 2;
    }
  }
  if (limit < 64 * kMiB || limit % kChunk != 0 || hold % kChunk != 0 || others % kChunk != 0 || hold > limit ||
      others > limit || (hold != 0 && release_file.empty())) {
    std::fprintf(stderr, "--limit-mb: a multiple of 16 of at least 64; --hold-mb/--others-mb: multiples of 16 "
                         "up to it; --hold-mb needs --release-file\n");
    return 2;
  }
  if (cudaSetDevice(0) != cudaSuccess || cudaFree(nullptr) != cudaSuccess || cuInit(0) != CUDA_SUCCESS) {
    std::printf("FAIL no device\n");
    return 1;
  }
  nvmlDevice_t dev = nullptr;
  if (!check(g_nvml.load() && g_nvml.init() == NVML_SUCCESS && g_nvml.handle(0, &dev) == NVML_SUCCESS,
             "nvmlInit and the handle of device 0")) {
    return 1;
  }
  if (wait) check(wait_free(limit), "the VM's memory is all free (earlier processes' shares came back)");

  if (hold != 0) {  // one of two processes of the VM: hold, wait, exit without freeing
    ballast b;
    check(b.fill(hold), "holding " + mib(hold));
    check_views(dev, limit, limit - hold, "while holding");
    std::printf("HOLDING\n");
    std::fflush(stdout);
    while (access(release_file.c_str(), F_OK) != 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    b.ptrs.clear();  // left allocated on purpose: the session's end frees it
    g_nvml.shutdown();
    std::printf("%s\n", g_failures ? "FAILED" : "ALL PASSED");
    std::fflush(stdout);  // _Exit flushes nothing
    std::_Exit(g_failures ? 1 : 0);
  }
  if (others != 0) {  // the second process: the first one's share counts here too
    check_views(dev, limit, limit - others, "another process of the VM holds " + mib(others));
    ballast b;
    check(b.fill(limit - others), "cudaMalloc of the " + mib(limit - others) + " the other process left");
    void* p = nullptr;
    const cudaError_t st = cudaMalloc(&p, kChunk);
    check(st == cudaErrorMemoryAllocation, "cudaMalloc past the shared limit: cudaErrorMemoryAllocation",
          cudaGetErrorName(st));
    if (st == cudaSuccess) cudaFree(p);
    check_views(dev, limit, 0, "both processes together at the limit");
    b.release();
    check_views(dev, limit, limit - others, "after this process freed its share");
  } else {
    check_views(dev, limit, limit, "at start");
    malloc_checks(dev, limit);
    driver_alloc_checks(dev, limit);
    vmm_checks(dev, limit);
    async_checks(dev, limit);
  }
  g_nvml.shutdown();
  std::printf("%s\n", g_failures ? "FAILED" : "ALL PASSED");
  return g_failures ? 1 : 0;
}
