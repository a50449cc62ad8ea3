// Virtual memory management as llama.cpp's VMM pool (and so Ollama) uses it:
// one large address reservation, then granularity-sized physical chunks
// created, mapped at the end of the mapped part, released at once (the
// mapping keeps them), given read/write access, and used as one contiguous
// buffer; finally one unmap of the whole pool and the address freed.
#include <cuda.h>
#include <cuda_runtime_api.h>

#include <cstring>
#include <random>
#include <vector>

#include "driver_check.h"

namespace driver_test {

namespace {

CUmemAllocationProp device_prop(CUdevice dev) {
  CUmemAllocationProp prop{};
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  prop.location.id = dev;
  return prop;
}

CUmemAccessDesc read_write(CUdevice dev) {
  CUmemAccessDesc a{};
  a.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  a.location.id = dev;
  a.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
  return a;
}

std::vector<unsigned char> pattern(size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::vector<unsigned char> v(n);
  for (auto& b : v) b = static_cast<unsigned char>(gen() % 255 + 1);
  return v;
}

}  // namespace

void vmm_checks(CUdevice dev) {
  int vmm = 0;
  ok_cu(cuDeviceGetAttribute(&vmm, CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, dev),
        "vmm: cuDeviceGetAttribute(VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED)");
  check(vmm == 1, "vmm: the device says VMM is supported", std::to_string(vmm));

  const CUmemAllocationProp prop = device_prop(dev);
  size_t gran = 0;
  if (!ok_cu(cuMemGetAllocationGranularity(&gran, &prop, CU_MEM_ALLOC_GRANULARITY_RECOMMENDED),
             "vmm: cuMemGetAllocationGranularity")) {
    return;
  }
  check(gran > 0 && (gran & (gran - 1)) == 0, "vmm: granularity is a power of two", std::to_string(gran));

  // llama.cpp reserves CUDA_POOL_VMM_MAX_SIZE (32 GiB) once.
  const size_t max_size = size_t{1} << 35;
  CUdeviceptr pool = 0;
  if (!ok_cu(cuMemAddressReserve(&pool, max_size, 0, 0, 0), "vmm: cuMemAddressReserve 32 GiB")) return;
  check(pool != 0 && pool % gran == 0, "vmm: the reservation is granularity-aligned");

  // Grow the pool three times, by 1, 2 and 1 granules, as a pool grows on demand.
  size_t pool_size = 0;
  bool grown = true;
  const size_t chunks[] = {gran, 2 * gran, gran};
  CUmemGenericAllocationHandle first_handle = 0;
  for (size_t i = 0; i < 3 && grown; ++i) {
    CUmemGenericAllocationHandle h = 0;
    grown = ok_cu(cuMemCreate(&h, chunks[i], &prop, 0), "vmm: cuMemCreate chunk " + std::to_string(i)) &&
            ok_cu(cuMemMap(pool + pool_size, chunks[i], 0, h, 0), "vmm: cuMemMap chunk " + std::to_string(i));
    if (i == 0) {
      first_handle = h;  // kept a while: a second mapping of it must alias
    } else if (h != 0) {
      // llama.cpp releases the handle at once: the mapping keeps the memory.
      ok_cu(cuMemRelease(h), "vmm: cuMemRelease while mapped, chunk " + std::to_string(i));
    }
    const CUmemAccessDesc access = read_write(dev);
    if (grown) grown = ok_cu(cuMemSetAccess(pool + pool_size, chunks[i], &access, 1),
                             "vmm: cuMemSetAccess chunk " + std::to_string(i));
    if (grown) pool_size += chunks[i];
  }
  if (!grown) return;
  unsigned long long flags = 0;
  CUmemLocation loc{};
  loc.type = CU_MEM_LOCATION_TYPE_DEVICE;
  loc.id = dev;
  ok_cu(cuMemGetAccess(&flags, &loc, pool + gran + 5), "vmm: cuMemGetAccess");
  check(flags == CU_MEM_ACCESS_FLAGS_PROT_READWRITE, "vmm: access reads back as read/write", std::to_string(flags));

  // One buffer across the chunks: the whole pool, then a window across the
  // boundary of chunks 0 and 1 and one across chunks 1 and 2.
  const auto all = pattern(pool_size, 11);
  ok_cu(cuMemcpyHtoD(pool, all.data(), pool_size), "vmm: cuMemcpyHtoD of the whole pool (3 chunks)");
  std::vector<unsigned char> back(pool_size, 0);
  ok_cu(cuMemcpyDtoH(back.data(), pool, pool_size), "vmm: cuMemcpyDtoH of the whole pool");
  check(back == all, "vmm: the pool reads back byte for byte");
  const size_t win = 4096 + 17;
  const auto w = pattern(win, 12);
  ok_cu(cuMemcpyHtoD(pool + gran - 2048, w.data(), win), "vmm: cuMemcpyHtoD across chunks 0|1");
  std::vector<unsigned char> wb(win, 0);
  ok_cu(cuMemcpyDtoH(wb.data(), pool + gran - 2048, win), "vmm: cuMemcpyDtoH across chunks 0|1");
  check(wb == w, "vmm: a window across chunks 0|1 reads back");
  ok_cu(cuMemsetD8(pool + 3 * gran - 100, 0x3c, 300), "vmm: cuMemsetD8 across chunks 1|2");
  ok_cu(cuMemcpyDtoH(wb.data(), pool + 3 * gran - 100, 300), "vmm: read the memset back");
  bool set = true;
  for (size_t i = 0; i < 300; ++i) set &= wb[i] == 0x3c;
  check(set, "vmm: memset across chunks 1|2 reads back");
  // Device to device with ordinary memory, and the runtime on the same pool.
  CUdeviceptr plain = 0;
  if (ok_cu(cuMemAlloc(&plain, 2 * gran), "vmm: cuMemAlloc beside the pool")) {
    ok_cu(cuMemcpyDtoD(plain, pool + gran / 2, 2 * gran), "vmm: cuMemcpyDtoD from the pool (spans chunks)");
    std::vector<unsigned char> pb(2 * gran, 0);
    check(cudaMemcpy(pb.data(), reinterpret_cast<void*>(plain), 2 * gran, cudaMemcpyDeviceToHost) == cudaSuccess,
          "vmm: cudaMemcpy D2H of the copy");
    std::vector<unsigned char> expect(all.begin() + static_cast<long>(gran / 2),
                                      all.begin() + static_cast<long>(gran / 2 + 2 * gran));
    std::memcpy(expect.data() + (gran - 2048 - gran / 2), w.data(), win);  // the window written after `all`
    check(pb == expect, "vmm: D2D from the pool carried the right bytes");
    cuMemFree(plain);
  }

  // The runtime's cudaMemcpyDefault tells VMM memory from host memory.
  std::vector<unsigned char> viaRuntime(4096, 0);
  check(cudaMemcpy(viaRuntime.data(), reinterpret_cast<void*>(pool + gran - 2048), 4096, cudaMemcpyDefault) ==
                cudaSuccess &&
            std::memcmp(viaRuntime.data(), w.data(), 4096) == 0,
        "vmm: cudaMemcpy(cudaMemcpyDefault) from mapped memory across chunks");

  // A second mapping of chunk 0's handle at the end of the pool aliases it.
  if (first_handle != 0) {
    if (ok_cu(cuMemMap(pool + pool_size, gran, 0, first_handle, 0), "vmm: cuMemMap a handle a second time")) {
      const CUmemAccessDesc access = read_write(dev);
      ok_cu(cuMemSetAccess(pool + pool_size, gran, &access, 1), "vmm: cuMemSetAccess of the alias");
      std::vector<unsigned char> alias(64, 0);
      ok_cu(cuMemcpyDtoH(alias.data(), pool + pool_size, 64), "vmm: read through the alias");
      check(std::memcmp(alias.data(), all.data(), 64) == 0, "vmm: two mappings of one handle show the same bytes");
      pool_size += gran;
    }
    ok_cu(cuMemRelease(first_handle), "vmm: cuMemRelease of chunk 0's handle (still mapped twice)");
  }

  // Misuse is refused, never a crash.
  CUmemGenericAllocationHandle extra = 0;
  if (ok_cu(cuMemCreate(&extra, gran, &prop, 0), "vmm: cuMemCreate one more")) {
    check(cuMemMap(pool + gran, gran, 0, extra, 0) != CUDA_SUCCESS, "vmm: mapping over a mapping is refused");
    ok_cu(cuMemRelease(extra), "vmm: cuMemRelease the unmapped one");
  }
  if (g_expect_vgpu) check(cuMemRelease(extra) != CUDA_SUCCESS, "vmm: releasing a handle twice is refused");
  std::vector<unsigned char> tail(4096, 1);
  check(cuMemcpyHtoD(pool + pool_size - 100, tail.data(), 4096) != CUDA_SUCCESS,
        "vmm: a copy past the mapped part is refused");
  if (g_expect_vgpu) {
    check(cuMemAddressFree(pool, max_size) == CUDA_ERROR_INVALID_VALUE,
          "vmm: freeing address space under live mappings is refused");
    check(cuMemUnmap(pool, gran + 4096) == CUDA_ERROR_INVALID_VALUE, "vmm: unmapping part of a mapping is refused");
  }

  // llama.cpp's teardown: one unmap of the whole pool, then the reservation.
  ok_cu(cuMemUnmap(pool, pool_size), "vmm: cuMemUnmap of the whole pool in one call");
  check(cuMemcpyHtoD(pool, tail.data(), 16) != CUDA_SUCCESS, "vmm: the unmapped pool is no longer reachable");
  ok_cu(cuMemAddressFree(pool, max_size), "vmm: cuMemAddressFree");
}

}  // namespace driver_test
