// vgpu-demo: a small, ordinary CUDA program (host code only, no kernels yet)
// that shows what a guest sees through vgpu: which runtime it loaded, the
// device, memory, copies in every direction, memsets and a stream, with the
// data verified and a few figures timed on the host.
//
// It links the CUDA runtime dynamically (nvcc -cudart shared) and has no RPATH:
//   through vgpu:  LD_LIBRARY_PATH=build/shim/lib VGPU_SOCKET=/path/to.sock build/bin/vgpu-demo
//   natively:      LD_LIBRARY_PATH=/usr/local/cuda/lib64 build/bin/vgpu-demo
// It prints `vgpu-demo: PASS` and exits 0, or `vgpu-demo: FAIL: <reason>` and exits 1.
#include <cuda_runtime.h>
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

constexpr size_t kMiB = size_t{1} << 20;
constexpr size_t kBytes = 16 * kMiB;
// A memset over an unaligned middle part of the buffer.
constexpr size_t kSetOffset = 4 * kMiB + 3;
constexpr size_t kSetBytes = kMiB + 123;
constexpr int kSetValue = 0x5a;
constexpr int kFillValue = 0xa5;

using clock_type = std::chrono::steady_clock;

double us_since(clock_type::time_point t0) {
  return std::chrono::duration<double, std::micro>(clock_type::now() - t0).count();
}

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0.0 : v[v.size() / 2];
}

[[noreturn]] void fail(const std::string& why) {
  std::printf("vgpu-demo: FAIL: %s\n", why.c_str());
  std::fflush(stdout);
  std::exit(1);
}

// Every CUDA call goes through this: a failure ends the program with the call,
// the error's name and its description.
void check(cudaError_t err, const char* what, int line) {
  if (err == cudaSuccess) return;
  const char* name = cudaGetErrorName(err);
  const char* text = cudaGetErrorString(err);
  char buf[512];
  std::snprintf(buf, sizeof buf, "%s returned %s (%d: %s) [line %d]", what,
                name ? name : "?", static_cast<int>(err), text ? text : "?", line);
  fail(buf);
}
#define CHECK(call) check((call), #call, __LINE__)

uint8_t pattern_byte(size_t i) {
  // Not periodic at any power of two a chunking bug would hide behind.
  uint64_t x = i * 0x9e3779b97f4a7c15ull;
  x ^= x >> 29;
  return static_cast<uint8_t>(x ^ (i >> 13));
}

// Finds the first byte where `got` differs from what `want(i)` says.
template <class Want>
bool verify(const std::vector<uint8_t>& got, Want want, const char* what) {
  for (size_t i = 0; i < got.size(); ++i) {
    uint8_t w = want(i);
    if (got[i] != w) {
      char buf[256];
      std::snprintf(buf, sizeof buf, "%s: byte %zu is 0x%02x, expected 0x%02x", what, i, got[i], w);
      fail(buf);
    }
  }
  return true;
}

double gib(size_t bytes) { return static_cast<double>(bytes) / (1024.0 * 1024.0 * 1024.0); }

}  // namespace

int main() {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);

  // Which libcudart.so.13 did the dynamic linker give us? vgpu's shim exports
  // vgpuShimInfo(); NVIDIA's runtime does not.
  using info_fn = const char* (*)();
  auto info = reinterpret_cast<info_fn>(dlsym(RTLD_DEFAULT, "vgpuShimInfo"));
  if (info) {
    const char* s = info();
    std::printf("vgpu-demo: CUDA runtime: vgpu shim (%s)\n", s ? s : "no info");
  } else {
    std::printf("vgpu-demo: CUDA runtime: NVIDIA's (native, not through vgpu)\n");
  }

  int count = 0;
  CHECK(cudaGetDeviceCount(&count));
  if (count < 1) fail("cudaGetDeviceCount reports no device");
  int runtime_version = 0, driver_version = 0;
  CHECK(cudaRuntimeGetVersion(&runtime_version));
  CHECK(cudaDriverGetVersion(&driver_version));
  std::printf("vgpu-demo: %d device(s); runtime %d, driver %d\n", count, runtime_version,
              driver_version);

  CHECK(cudaSetDevice(0));
  cudaDeviceProp prop;
  std::memset(&prop, 0, sizeof prop);
  CHECK(cudaGetDeviceProperties(&prop, 0));
  prop.name[sizeof prop.name - 1] = '\0';
  std::printf("vgpu-demo: device 0: %s, compute capability %d.%d, %.1f GiB, %d SMs\n", prop.name,
              prop.major, prop.minor, gib(prop.totalGlobalMem), prop.multiProcessorCount);

  size_t free_before = 0, total = 0;
  CHECK(cudaMemGetInfo(&free_before, &total));
  std::printf("vgpu-demo: memory: %.2f GiB free of %.2f GiB\n", gib(free_before), gib(total));
  if (total == 0 || free_before > total) fail("cudaMemGetInfo reports free > total or total == 0");

  // Three 16 MiB buffers.
  void* a = nullptr;
  void* b = nullptr;
  void* c = nullptr;
  CHECK(cudaMalloc(&a, kBytes));
  CHECK(cudaMalloc(&b, kBytes));
  CHECK(cudaMalloc(&c, kBytes));
  if (!a || !b || !c) fail("cudaMalloc returned success and a null pointer");
  if (a == b || b == c || a == c) fail("cudaMalloc returned the same pointer twice");
  size_t free_after = 0;
  CHECK(cudaMemGetInfo(&free_after, &total));
  std::printf("vgpu-demo: allocated 3 x 16 MiB (free memory %.2f -> %.2f GiB)\n", gib(free_before),
              gib(free_after));

  std::vector<uint8_t> host(kBytes), back(kBytes);
  for (size_t i = 0; i < kBytes; ++i) host[i] = pattern_byte(i);

  // host -> a -> b, memset part of b, b -> host.
  CHECK(cudaMemcpy(a, host.data(), kBytes, cudaMemcpyHostToDevice));
  CHECK(cudaMemcpy(b, a, kBytes, cudaMemcpyDeviceToDevice));
  CHECK(cudaMemset(static_cast<uint8_t*>(b) + kSetOffset, kSetValue, kSetBytes));
  CHECK(cudaMemcpy(back.data(), b, kBytes, cudaMemcpyDeviceToHost));
  auto expect_b = [&](size_t i) {
    return (i >= kSetOffset && i < kSetOffset + kSetBytes) ? static_cast<uint8_t>(kSetValue)
                                                           : host[i];
  };
  verify(back, expect_b, "H2D, D2D, memset, D2H");
  std::printf("vgpu-demo: 16 MiB H2D -> D2D -> memset(1 MiB+123 at offset 4 MiB+3) -> D2H: verified\n");

  // c: memset all of it, then on a stream copy b over its first half.
  cudaStream_t stream = nullptr;
  CHECK(cudaStreamCreate(&stream));
  CHECK(cudaMemsetAsync(c, kFillValue, kBytes, stream));
  CHECK(cudaMemcpyAsync(c, b, kBytes / 2, cudaMemcpyDeviceToDevice, stream));
  CHECK(cudaStreamSynchronize(stream));
  std::fill(back.begin(), back.end(), uint8_t{0});
  CHECK(cudaMemcpy(back.data(), c, kBytes, cudaMemcpyDeviceToHost));
  verify(back,
         [&](size_t i) { return i < kBytes / 2 ? expect_b(i) : static_cast<uint8_t>(kFillValue); },
         "memset + D2D on a stream");
  CHECK(cudaStreamDestroy(stream));
  std::printf("vgpu-demo: memset + D2D on a stream, D2H: verified\n");

  // Figures (host clock; informative only).
  std::vector<double> t;
  t.reserve(1000);
  size_t f = 0, tt = 0;
  for (int i = 0; i < 1000; ++i) {
    auto t0 = clock_type::now();
    CHECK(cudaMemGetInfo(&f, &tt));
    t.push_back(us_since(t0));
  }
  std::printf("vgpu-demo: cudaMemGetInfo round trip: median %.2f us over 1000 calls\n", median(t));

  constexpr int kReps = 5;
  std::vector<double> h2d, d2h;
  for (int r = 0; r < kReps; ++r) {
    auto t0 = clock_type::now();
    CHECK(cudaMemcpy(a, host.data(), kBytes, cudaMemcpyHostToDevice));
    h2d.push_back(us_since(t0));
    t0 = clock_type::now();
    CHECK(cudaMemcpy(back.data(), a, kBytes, cudaMemcpyDeviceToHost));
    d2h.push_back(us_since(t0));
  }
  verify(back, [&](size_t i) { return host[i]; }, "16 MiB round trip (timed)");
  auto gbps = [](double us) { return us > 0 ? static_cast<double>(kBytes) / (us * 1e3) : 0.0; };
  std::printf("vgpu-demo: 16 MiB pageable copies (median of %d): H2D %.2f GB/s, D2H %.2f GB/s\n",
              kReps, gbps(median(h2d)), gbps(median(d2h)));

  CHECK(cudaFree(a));
  CHECK(cudaFree(b));
  CHECK(cudaFree(c));
  CHECK(cudaDeviceSynchronize());
  std::printf("vgpu-demo: freed all buffers\n");
  std::printf("vgpu-demo: PASS\n");
  return 0;
}
