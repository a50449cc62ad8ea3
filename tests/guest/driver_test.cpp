// vgpu-driver-test: a guest program using the CUDA driver API (libcuda.so.1)
// as Ollama's GPU discovery and driver-API programs do, and mixing it with the
// runtime in one process. Linked against NVIDIA's libraries; run with vgpu's
// shim folder first on LD_LIBRARY_PATH it goes through vgpu, and natively it
// must pass the same way.
//
//   vgpu-driver-test [--expect-vgpu] [--reference]
//     prints PASS/FAIL lines, exits 1 on any failure. --reference: the mediator
//     runs the reference executor (kernels are recorded, not run: launch
//     records are checked instead of results).
#include <cuda.h>
#include <cuda_runtime_api.h>
#include <dlfcn.h>

#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "driver_check.h"

namespace {

using namespace driver_test;

std::vector<unsigned char> random_bytes(size_t n, unsigned seed) {
  std::mt19937 gen(seed);
  std::vector<unsigned char> v(n);
  for (auto& b : v) b = static_cast<unsigned char>(gen() % 255 + 1);  // never zero
  return v;
}

}  // namespace

int main(int argc, char** argv) {
  bool expect_vgpu = false;
  bool reference = false;  // the reference executor: kernels are recorded, not run
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--expect-vgpu") == 0) expect_vgpu = true;
    if (std::strcmp(argv[i], "--reference") == 0) reference = true;
  }
  g_expect_vgpu = expect_vgpu;
  if (expect_vgpu) check(dlsym(RTLD_DEFAULT, "vgpuShimInfo") != nullptr, "running through vgpu's shim");

  // Before cuInit the driver refuses.
  int count = -1;
  check(cuDeviceGetCount(&count) == CUDA_ERROR_NOT_INITIALIZED, "cuDeviceGetCount before cuInit is refused");

  // Ollama's discovery sequence.
  if (!ok_cu(cuInit(0), "cuInit")) return 1;
  int version = 0;
  ok_cu(cuDriverGetVersion(&version), "cuDriverGetVersion");
  check(version >= 13000, "driver version >= 13000", std::to_string(version));
  ok_cu(cuDeviceGetCount(&count), "cuDeviceGetCount");
  check(count >= 1, "at least one device");
  CUdevice dev = -1;
  ok_cu(cuDeviceGet(&dev, 0), "cuDeviceGet(0)");
  check(cuDeviceGet(&dev, count) == CUDA_ERROR_INVALID_DEVICE, "cuDeviceGet past the count is refused");
  ok_cu(cuDeviceGet(&dev, 0), "cuDeviceGet(0) again");
  int major = 0, minor = -1;
  ok_cu(cuDeviceGetAttribute(&major, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR, dev), "compute capability major");
  ok_cu(cuDeviceGetAttribute(&minor, CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MINOR, dev), "compute capability minor");
  cudaDeviceProp props;
  if (cudaGetDeviceProperties(&props, 0) == cudaSuccess) {
    check(major == props.major && minor == props.minor, "driver and runtime agree on the compute capability");
    CUuuid uuid{};
    ok_cu(cuDeviceGetUuid(&uuid, dev), "cuDeviceGetUuid");
    check(std::memcmp(uuid.bytes, props.uuid.bytes, 16) == 0, "driver and runtime agree on the UUID");
    char name[256] = {};
    ok_cu(cuDeviceGetName(name, sizeof name, dev), "cuDeviceGetName");
    check(std::strcmp(name, props.name) == 0, "driver and runtime agree on the name", name);
    size_t total = 0;
    ok_cu(cuDeviceTotalMem(&total, dev), "cuDeviceTotalMem");
    check(total == props.totalGlobalMem, "driver and runtime agree on the total memory");
  } else {
    check(false, "cudaGetDeviceProperties");
  }
  char bus[32] = {};
  ok_cu(cuDeviceGetPCIBusId(bus, sizeof bus, dev), "cuDeviceGetPCIBusId");
  check(std::strlen(bus) >= 12, "PCI bus id looks like dddd:bb:dd.f", bus);

  CUcontext ctx = nullptr;
  if (!ok_cu(cuCtxCreate(&ctx, nullptr, 0, dev), "cuCtxCreate")) return 1;
  CUcontext current = nullptr;
  ok_cu(cuCtxGetCurrent(&current), "cuCtxGetCurrent");
  check(current == ctx, "the created context is current");
  size_t free_b = 0, total_b = 0;
  ok_cu(cuMemGetInfo(&free_b, &total_b), "cuMemGetInfo");
  check(free_b > 0 && free_b <= total_b, "0 < free <= total");

  // Memory and copies.
  const size_t n = (4u << 20) + 3;
  const auto a = random_bytes(n, 7);
  CUdeviceptr d1 = 0, d2 = 0;
  ok_cu(cuMemAlloc(&d1, n), "cuMemAlloc d1");
  ok_cu(cuMemAlloc(&d2, n), "cuMemAlloc d2");
  ok_cu(cuMemcpyHtoD(d1, a.data(), n), "cuMemcpyHtoD");
  ok_cu(cuMemcpyDtoD(d2, d1, n), "cuMemcpyDtoD");
  std::vector<unsigned char> back(n, 0);
  ok_cu(cuMemcpyDtoH(back.data(), d2, n), "cuMemcpyDtoH");
  check(back == a, "driver round trip H2D -> D2D -> D2H byte for byte");
  ok_cu(cuMemsetD8(d2, 0x5a, 1000), "cuMemsetD8");
  ok_cu(cuMemcpyDtoH(back.data(), d2, 1000), "cuMemcpyDtoH after memset");
  bool set = true;
  for (size_t i = 0; i < 1000; ++i) set &= back[i] == 0x5a;
  check(set, "memset bytes read back");
  ok_cu(cuCtxSynchronize(), "cuCtxSynchronize");

  // Stream-ordered copies and memsets, the unified cuMemcpy, 16/32-bit patterns.
  {
    CUstream s = nullptr;
    ok_cu(cuStreamCreate(&s, CU_STREAM_NON_BLOCKING), "cuStreamCreate for async copies");
    std::vector<unsigned char> b2(n, 0);
    ok_cu(cuMemcpyHtoDAsync(d2, a.data(), n, s), "cuMemcpyHtoDAsync");
    ok_cu(cuMemcpyDtoDAsync(d1, d2, n, s), "cuMemcpyDtoDAsync");
    ok_cu(cuMemcpyDtoHAsync(b2.data(), d1, n, s), "cuMemcpyDtoHAsync");
    ok_cu(cuStreamSynchronize(s), "cuStreamSynchronize after async copies");
    check(b2 == a, "async round trip H2D -> D2D -> D2H byte for byte");
    ok_cu(cuMemsetD16Async(d1, 0x1234, 100, s), "cuMemsetD16Async 0x1234");
    ok_cu(cuMemsetD32Async(d1 + 200, 0xa1b2c3d4u, 50, s), "cuMemsetD32Async 0xa1b2c3d4");
    ok_cu(cuMemsetD8Async(d1 + 400, 0x77, 8, s), "cuMemsetD8Async");
    ok_cu(cuStreamSynchronize(s), "cuStreamSynchronize after memsets");
    std::vector<unsigned char> m(408, 0);
    ok_cu(cuMemcpy(reinterpret_cast<CUdeviceptr>(m.data()), d1, m.size()), "cuMemcpy device -> host (unified)");
    bool ok16 = true, ok32 = true, ok8 = true;
    for (size_t i = 0; i < 100; ++i) ok16 &= m[2 * i] == 0x34 && m[2 * i + 1] == 0x12;
    for (size_t i = 0; i < 50; ++i)
      ok32 &= m[200 + 4 * i] == 0xd4 && m[201 + 4 * i] == 0xc3 && m[202 + 4 * i] == 0xb2 && m[203 + 4 * i] == 0xa1;
    for (size_t i = 400; i < 408; ++i) ok8 &= m[i] == 0x77;
    check(ok16, "cuMemsetD16Async pattern read back");
    check(ok32, "cuMemsetD32Async pattern read back");
    check(ok8, "cuMemsetD8Async bytes read back");
    ok_cu(cuMemsetD32(d1, 0x01020304u, 4), "cuMemsetD32");
    ok_cu(cuMemsetD16(d1 + 16, 0x0506, 2), "cuMemsetD16");
    ok_cu(cuMemcpyAsync(d2, d1, 20, s), "cuMemcpyAsync device -> device (unified)");
    std::vector<unsigned char> t(20, 0);
    ok_cu(cuMemcpyAsync(reinterpret_cast<CUdeviceptr>(t.data()), d2, t.size(), s), "cuMemcpyAsync device -> host");
    ok_cu(cuStreamSynchronize(s), "cuStreamSynchronize after unified copies");
    const unsigned char want[20] = {4, 3, 2, 1, 4, 3, 2, 1, 4, 3, 2, 1, 4, 3, 2, 1, 6, 5, 6, 5};
    check(std::memcmp(t.data(), want, sizeof want) == 0, "cuMemsetD32 / D16 then unified copies read back");
    check(cuMemsetD32(d1 + 1, 7, 4) == CUDA_ERROR_INVALID_VALUE, "cuMemsetD32 on a misaligned address: CUDA_ERROR_INVALID_VALUE");
    ok_cu(cuStreamDestroy(s), "cuStreamDestroy");
  }

  // Streams and events: an asynchronous copy ordered by an event on another stream.
  CUstream s1 = nullptr, s2 = nullptr;
  CUevent e1 = nullptr, e2 = nullptr;
  if (ok_cu(cuStreamCreate(&s1, CU_STREAM_NON_BLOCKING), "cuStreamCreate") &&
      ok_cu(cuStreamCreateWithPriority(&s2, CU_STREAM_NON_BLOCKING, 0), "cuStreamCreateWithPriority") &&
      ok_cu(cuEventCreate(&e1, CU_EVENT_DEFAULT), "cuEventCreate e1") &&
      ok_cu(cuEventCreate(&e2, CU_EVENT_DEFAULT), "cuEventCreate e2")) {
    ok_cu(cuEventRecord(e1, s1), "cuEventRecord e1");
    ok_cu(cuStreamWaitEvent(s2, e1, 0), "cuStreamWaitEvent");
    ok_cu(cuEventRecord(e2, s2), "cuEventRecord e2");
    ok_cu(cuStreamSynchronize(s2), "cuStreamSynchronize");
    ok_cu(cuEventSynchronize(e2), "cuEventSynchronize");
    check(cuEventQuery(e2) == CUDA_SUCCESS, "cuEventQuery after synchronize");
    check(cuStreamQuery(s1) == CUDA_SUCCESS, "cuStreamQuery of an idle stream");
    float ms = -1.0f;
    ok_cu(cuEventElapsedTime(&ms, e1, e2), "cuEventElapsedTime");
    check(ms >= 0.0f, "elapsed time >= 0");
    ok_cu(cuEventDestroy(e1), "cuEventDestroy e1");
    ok_cu(cuEventDestroy(e2), "cuEventDestroy e2");
    ok_cu(cuStreamDestroy(s1), "cuStreamDestroy s1");
    ok_cu(cuStreamDestroy(s2), "cuStreamDestroy s2");
  }

  // Driver and runtime share one context: memory of one works with the other.
  void* rt = nullptr;
  if (cudaMalloc(&rt, n) == cudaSuccess) {
    ok_cu(cuMemcpyHtoD(reinterpret_cast<CUdeviceptr>(rt), a.data(), n), "cuMemcpyHtoD into cudaMalloc'd memory");
    std::vector<unsigned char> rb(n, 0);
    check(cudaMemcpy(rb.data(), rt, n, cudaMemcpyDeviceToHost) == cudaSuccess && rb == a,
          "runtime reads back what the driver wrote");
    cudaFree(rt);
  } else {
    check(false, "cudaMalloc");
  }

  // Entry points by name.
  void* fn = nullptr;
  CUdriverProcAddressQueryResult status{};
  ok_cu(cuGetProcAddress("cuMemGetInfo", &fn, 13000, CU_GET_PROC_ADDRESS_DEFAULT, &status),
        "cuGetProcAddress(cuMemGetInfo)");
  if (fn) {
    auto mem_get_info = reinterpret_cast<CUresult (*)(size_t*, size_t*)>(fn);
    size_t f2 = 0, t2 = 0;
    check(mem_get_info(&f2, &t2) == CUDA_SUCCESS && t2 == total_b, "the function cuGetProcAddress gave works");
  }
  // NVIDIA's driver (CUDA 13, measured on the H100): success, the status says
  // not found, and no function.
  fn = reinterpret_cast<void*>(1);
  const CUresult unknown = cuGetProcAddress("cuNoSuchFunction", &fn, 13000, CU_GET_PROC_ADDRESS_DEFAULT, &status);
  check(unknown == CUDA_SUCCESS && status == CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND && fn == nullptr,
        "cuGetProcAddress of an unknown name: status CU_GET_PROC_ADDRESS_SYMBOL_NOT_FOUND, no function",
        name_of(unknown) + ", status " + std::to_string(static_cast<int>(status)));

  // Errors.
  check(cuMemFree(static_cast<CUdeviceptr>(0x1234500)) == CUDA_ERROR_INVALID_VALUE,
        "cuMemFree of a pointer never allocated: CUDA_ERROR_INVALID_VALUE");
  check(cuMemcpyHtoD(d1, a.data(), n + 1) == CUDA_ERROR_INVALID_VALUE,
        "cuMemcpyHtoD past the end: CUDA_ERROR_INVALID_VALUE");
  const char* text = nullptr;
  check(cuGetErrorName(CUDA_ERROR_INVALID_VALUE, &text) == CUDA_SUCCESS && text &&
            std::strcmp(text, "CUDA_ERROR_INVALID_VALUE") == 0,
        "cuGetErrorName");

  // The groups in their own files.
  vmm_checks(dev);
  module_checks(dev, reference);
  pointer_checks(dev);
  pool_checks(dev);

  ok_cu(cuMemFree(d1), "cuMemFree d1");
  ok_cu(cuMemFree(d2), "cuMemFree d2");
  ok_cu(cuCtxDestroy(ctx), "cuCtxDestroy");
  std::printf("SUMMARY driver: %d failed\n", g_failures);
  return g_failures == 0 ? 0 : 1;
}
