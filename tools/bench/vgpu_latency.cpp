// vgpu-latency: per-call latency of the CUDA runtime, natively or through vgpu.
//
// The same binary measures both ways; LD_LIBRARY_PATH decides whose
// libcudart.so.13 it loads (it has no RPATH):
//   natively:      LD_LIBRARY_PATH=/usr/local/cuda/lib64 build/bin/vgpu-latency
//   through vgpu:  LD_LIBRARY_PATH=build/shim/lib VGPU_SOCKET=/path/to.sock build/bin/vgpu-latency
//
// Output: a first line saying native or vgpu, then one line per figure:
//   <name>  median <x> us  p10 <y>  p90 <z>
// Names contain no spaces, so that scripts can join two runs on the name.
// Figures are informative: nothing here asserts on time. A CUDA error ends the
// program with exit code 1.
#include <cuda_runtime.h>
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <string>
#include <vector>

#include "bench_common.h"

namespace {

using clock_type = std::chrono::steady_clock;

void usage(FILE* to) {
  std::fprintf(to,
               "usage: vgpu-latency [--iters N] [--warmup N]\n"
               "\n"
               "Measures the latency of single CUDA runtime calls and prints the median,\n"
               "10th and 90th percentile of each, in microseconds:\n"
               "  cudaMemGetInfo                 a synchronous round trip\n"
               "  cudaStreamSynchronize_idle     on a stream with no work\n"
               "  cudaMalloc+cudaFree_1MiB       one allocation and its release\n"
               "  cudaMemcpy_H2D_4KiB            4 KiB from pageable host memory\n"
               "  cudaMemcpy_D2H_4KiB            4 KiB to pageable host memory\n"
               "\n"
               "  --iters N    measured iterations per figure (default 20000)\n"
               "  --warmup N   unmeasured iterations before each figure (default min(1000, iters))\n"
               "  --help       this text\n"
               "\n"
               "Through vgpu: LD_LIBRARY_PATH=<build>/shim/lib VGPU_SOCKET=<socket> vgpu-latency\n"
               "Natively:     LD_LIBRARY_PATH=/usr/local/cuda/lib64 vgpu-latency\n");
}

using vgpu_bench::parse_count;
#define CHECK(call) vgpu_bench::check("vgpu-latency", (call), #call)

double percentile(const std::vector<double>& sorted, double p) { return vgpu_bench::percentile_sorted(sorted, p); }

void measure(const char* name, long warmup, long iters, const std::function<void()>& once) {
  for (long i = 0; i < warmup; ++i) once();
  std::vector<double> us;
  us.reserve(static_cast<size_t>(iters));
  for (long i = 0; i < iters; ++i) {
    auto t0 = clock_type::now();
    once();
    us.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
  }
  std::sort(us.begin(), us.end());
  std::printf("%-28s  median %.2f us  p10 %.2f  p90 %.2f\n", name, percentile(us, 0.5),
              percentile(us, 0.1), percentile(us, 0.9));
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  long iters = 20000;
  long warmup = -1;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    auto value = [&](const char* opt) -> const char* {
      std::string prefix = std::string(opt) + "=";
      if (a.compare(0, prefix.size(), prefix) == 0) return argv[i] + prefix.size();
      if (a == opt && i + 1 < argc) return argv[++i];
      return nullptr;
    };
    if (a == "--help" || a == "-h") {
      usage(stdout);
      return 0;
    } else if (a.rfind("--iters", 0) == 0) {
      if (!parse_count(value("--iters"), &iters)) {
        std::fprintf(stderr, "vgpu-latency: --iters needs a count from 1 to 100000000\n");
        return 2;
      }
    } else if (a.rfind("--warmup", 0) == 0) {
      if (!parse_count(value("--warmup"), &warmup)) {
        std::fprintf(stderr, "vgpu-latency: --warmup needs a count from 1 to 100000000\n");
        return 2;
      }
    } else {
      std::fprintf(stderr, "vgpu-latency: unknown argument '%s'\n\n", argv[i]);
      usage(stderr);
      return 2;
    }
  }
  if (warmup < 0) warmup = std::min(1000L, iters);

  using info_fn = const char* (*)();
  auto info = reinterpret_cast<info_fn>(dlsym(RTLD_DEFAULT, "vgpuShimInfo"));
  if (info) {
    const char* s = info();
    std::printf("vgpu-latency: vgpu (%s)", s ? s : "no info");
  } else {
    std::printf("vgpu-latency: native (NVIDIA's CUDA runtime)");
  }
  std::printf(", %ld iterations per figure, %ld warm-up\n", iters, warmup);

  CHECK(cudaSetDevice(0));
  cudaDeviceProp prop;
  std::memset(&prop, 0, sizeof prop);
  CHECK(cudaGetDeviceProperties(&prop, 0));
  prop.name[sizeof prop.name - 1] = '\0';
  std::printf("vgpu-latency: device 0: %s\n", prop.name);

  size_t free_b = 0, total_b = 0;
  measure("cudaMemGetInfo", warmup, iters, [&] { CHECK(cudaMemGetInfo(&free_b, &total_b)); });

  cudaStream_t stream = nullptr;
  CHECK(cudaStreamCreate(&stream));
  measure("cudaStreamSynchronize_idle", warmup, iters,
          [&] { CHECK(cudaStreamSynchronize(stream)); });
  CHECK(cudaStreamDestroy(stream));

  measure("cudaMalloc+cudaFree_1MiB", warmup, iters, [&] {
    void* p = nullptr;
    CHECK(cudaMalloc(&p, size_t{1} << 20));
    CHECK(cudaFree(p));
  });

  constexpr size_t kSmall = 4096;
  std::vector<unsigned char> host(kSmall, 0x3c);
  void* dev = nullptr;
  CHECK(cudaMalloc(&dev, kSmall));
  measure("cudaMemcpy_H2D_4KiB", warmup, iters,
          [&] { CHECK(cudaMemcpy(dev, host.data(), kSmall, cudaMemcpyHostToDevice)); });
  measure("cudaMemcpy_D2H_4KiB", warmup, iters,
          [&] { CHECK(cudaMemcpy(host.data(), dev, kSmall, cudaMemcpyDeviceToHost)); });
  CHECK(cudaFree(dev));
  return 0;
}
