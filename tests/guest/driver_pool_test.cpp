// Stream-ordered allocation (runtime and driver), the default memory pool's
// handle and attributes, and cudaHostRegister.
#include <cuda.h>
#include <cuda_runtime_api.h>

#include <cstring>
#include <vector>

#include "driver_check.h"

namespace driver_test {

void pool_checks(CUdevice dev) {
  cudaStream_t s = nullptr;
  if (cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking) != cudaSuccess) {
    check(false, "pool: cudaStreamCreateWithFlags");
    return;
  }
  const size_t n = (1 << 20) + 5;
  std::vector<unsigned char> src(n), back(n, 0);
  for (size_t i = 0; i < n; ++i) src[i] = static_cast<unsigned char>(i * 7 + 1);
  void* p = nullptr;
  check(cudaMallocAsync(&p, n, s) == cudaSuccess && p != nullptr, "pool: cudaMallocAsync");
  check(cudaMemcpyAsync(p, src.data(), n, cudaMemcpyHostToDevice, s) == cudaSuccess, "pool: copy into it");
  check(cudaMemcpyAsync(back.data(), p, n, cudaMemcpyDeviceToHost, s) == cudaSuccess, "pool: copy out of it");
  check(cudaStreamSynchronize(s) == cudaSuccess && back == src, "pool: stream-ordered memory round trip");
  cudaPointerAttributes a{};
  check(cudaPointerGetAttributes(&a, p) == cudaSuccess && a.type == cudaMemoryTypeDevice,
        "pool: cudaMallocAsync'd memory is device memory");
  check(cudaFreeAsync(p, s) == cudaSuccess, "pool: cudaFreeAsync");
  check(cudaStreamSynchronize(s) == cudaSuccess, "pool: synchronize after the free");
  if (g_expect_vgpu) {
    // The freed pointer is out of the session's ledger at once.
    check(cudaMemcpy(back.data(), p, 16, cudaMemcpyDeviceToHost) != cudaSuccess,
          "pool: the freed memory is no longer reachable");
    cudaGetLastError();
  }

  if (g_expect_vgpu) {
    // A free of memory the session never had: posted, so the error comes at
    // the next synchronising call of the stream, once.
    int local = 0;
    cudaFreeAsync(&local, s);
    check(cudaStreamSynchronize(s) != cudaSuccess, "pool: a bad cudaFreeAsync is reported at the next synchronize");
    cudaGetLastError();
    check(cudaStreamSynchronize(s) == cudaSuccess, "pool: and only once");
  }

  // The driver's forms, on the same session.
  CUdeviceptr d = 0;
  if (ok_cu(cuMemAllocAsync(&d, 4096, reinterpret_cast<CUstream>(s)), "pool: cuMemAllocAsync")) {
    ok_cu(cuMemsetD8(d, 0x11, 4096), "pool: cuMemsetD8 on it");
    ok_cu(cuMemFreeAsync(d, reinterpret_cast<CUstream>(s)), "pool: cuMemFreeAsync");
    ok_cu(cuStreamSynchronize(reinterpret_cast<CUstream>(s)), "pool: cuStreamSynchronize");
  }

  // The default pool: a handle, a release threshold that reads back, and an
  // allocation from it.
  cudaMemPool_t pool = nullptr;
  check(cudaDeviceGetDefaultMemPool(&pool, dev) == cudaSuccess && pool != nullptr, "pool: cudaDeviceGetDefaultMemPool");
  unsigned long long threshold = 1ull << 30, got = 0;
  check(cudaMemPoolSetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &threshold) == cudaSuccess,
        "pool: cudaMemPoolSetAttribute(ReleaseThreshold)");
  check(cudaMemPoolGetAttribute(pool, cudaMemPoolAttrReleaseThreshold, &got) == cudaSuccess && got == threshold,
        "pool: the release threshold reads back");
  void* q = nullptr;
  check(cudaMallocFromPoolAsync(&q, 8192, pool, s) == cudaSuccess && q != nullptr, "pool: cudaMallocFromPoolAsync");
  check(cudaFreeAsync(q, s) == cudaSuccess && cudaStreamSynchronize(s) == cudaSuccess, "pool: free it");
  check(cudaMemPoolTrimTo(pool, 0) == cudaSuccess, "pool: cudaMemPoolTrimTo");

  // cudaHostRegister: honoured for copies and pointer attributes.
  std::vector<unsigned char> host(1 << 16, 3);
  if (check_ok(cudaHostRegister(host.data(), host.size(), cudaHostRegisterDefault) == cudaSuccess,
               "pool: cudaHostRegister")) {
    check(cudaPointerGetAttributes(&a, host.data() + 10) == cudaSuccess && a.type == cudaMemoryTypeHost,
          "pool: registered memory is Host memory", std::to_string(a.type));
    check(cudaHostUnregister(host.data()) == cudaSuccess, "pool: cudaHostUnregister");
    check(cudaHostUnregister(host.data()) == cudaErrorHostMemoryNotRegistered,
          "pool: unregistering twice is cudaErrorHostMemoryNotRegistered");
    cudaGetLastError();
  }
  cudaStreamDestroy(s);
}

}  // namespace driver_test
