// vgpu-kernel-bench: kernel launch figures, natively or through vgpu.
//
// The same binary measures both ways; LD_LIBRARY_PATH decides whose
// libcudart.so.13 it loads (it links the runtime dynamically, no RPATH):
//   natively:      LD_LIBRARY_PATH=/usr/local/cuda/lib64 build/bin/vgpu-kernel-bench
//   through vgpu:  LD_LIBRARY_PATH=build/shim/lib VGPU_SOCKET=/path/to.sock build/bin/vgpu-kernel-bench
//
// Output: lines starting with "vgpu-kernel-bench:" (native or vgpu, the device,
// spreads), and one line per figure, three fields:
//   <name> <value> <unit>
// Names contain no spaces, so that scripts can join two runs on the name.
// Figures are informative: nothing here asserts on time. A CUDA error, or
// kernels that did not do their work, end the program with exit code 1.
#include <cuda_runtime.h>
#include <dlfcn.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "bench_common.h"
#include <vector>

__global__ void bench_empty() {}

__global__ void bench_inc(int* d, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) d[i] += 1;
}

namespace {

using clock_type = std::chrono::steady_clock;

void usage(FILE* to) {
  std::fprintf(to,
               "usage: vgpu-kernel-bench [--iters N]\n"
               "\n"
               "Measures kernel launches and prints one line per figure, `name value unit`:\n"
               "  launch_rate          N empty kernels launched back to back on one stream,\n"
               "                       then one cudaStreamSynchronize: launches/s\n"
               "  launch_sync_latency  one empty kernel + cudaStreamSynchronize, median of N/10: us\n"
               "  kernels100_gpu_time  100 small kernels back to back, GPU time between two events,\n"
               "                       median of 100 repetitions: us\n"
               "\n"
               "  --iters N    launches for launch_rate (default 100000; launch_sync_latency\n"
               "               takes N/10 samples, at least 100)\n"
               "  --help       this text\n"
               "\n"
               "Through vgpu: LD_LIBRARY_PATH=<build>/shim/lib VGPU_SOCKET=<socket> vgpu-kernel-bench\n"
               "Natively:     LD_LIBRARY_PATH=/usr/local/cuda/lib64 vgpu-kernel-bench\n");
}

using vgpu_bench::parse_count;
using vgpu_bench::percentile;
#define CHECK(call) vgpu_bench::check("vgpu-kernel-bench", (call), #call)

void spread(const char* name, const std::vector<double>& v, const char* unit) {
  std::printf("vgpu-kernel-bench: %s p10 %.2f p90 %.2f %s (%zu samples)\n", name, percentile(v, 0.1),
              percentile(v, 0.9), unit, v.size());
}

}  // namespace

int main(int argc, char** argv) {
  long iters = 100000;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--help" || a == "-h") {
      usage(stdout);
      return 0;
    } else if (a == "--iters" || a.rfind("--iters=", 0) == 0) {
      const char* v = a == "--iters" ? (i + 1 < argc ? argv[++i] : nullptr) : argv[i] + 8;
      if (!parse_count(v, &iters)) {
        std::fprintf(stderr, "vgpu-kernel-bench: --iters needs a count from 1 to 100000000\n");
        return 2;
      }
    } else {
      std::fprintf(stderr, "vgpu-kernel-bench: unknown argument '%s'\n\n", argv[i]);
      usage(stderr);
      return 2;
    }
  }
  const long samples = std::max(100L, iters / 10);
  constexpr int kBatch = 100, kReps = 100;

  using info_fn = const char* (*)();
  auto info = reinterpret_cast<info_fn>(dlsym(RTLD_DEFAULT, "vgpuShimInfo"));
  if (info) {
    const char* s = info();
    std::printf("vgpu-kernel-bench: vgpu (%s)", s ? s : "no info");
  } else {
    std::printf("vgpu-kernel-bench: native (NVIDIA's CUDA runtime)");
  }
  std::printf(", %ld launches for the rate, %ld latency samples, %d x %d kernels\n", iters, samples, kReps, kBatch);

  CHECK(cudaSetDevice(0));
  cudaDeviceProp prop;
  std::memset(&prop, 0, sizeof prop);
  CHECK(cudaGetDeviceProperties(&prop, 0));
  prop.name[sizeof prop.name - 1] = '\0';
  std::printf("vgpu-kernel-bench: device 0: %s\n", prop.name);
  std::fflush(stdout);

  cudaStream_t s = nullptr;
  CHECK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));

  // Warm-up: module loads, first launches.
  for (int i = 0; i < 1000; ++i) bench_empty<<<1, 1, 0, s>>>();
  CHECK(cudaGetLastError());
  CHECK(cudaStreamSynchronize(s));

  // 1. Asynchronous launch rate.
  {
    const auto t0 = clock_type::now();
    for (long i = 0; i < iters; ++i) bench_empty<<<1, 1, 0, s>>>();
    CHECK(cudaGetLastError());
    CHECK(cudaStreamSynchronize(s));
    const double sec = std::chrono::duration<double>(clock_type::now() - t0).count();
    std::printf("launch_rate %.0f launches/s\n", static_cast<double>(iters) / sec);
    std::fflush(stdout);
  }

  // 2. Launch + stream synchronize latency.
  {
    std::vector<double> us;
    us.reserve(static_cast<size_t>(samples));
    for (long i = 0; i < samples; ++i) {
      const auto t0 = clock_type::now();
      bench_empty<<<1, 1, 0, s>>>();
      CHECK(cudaStreamSynchronize(s));
      us.push_back(std::chrono::duration<double, std::micro>(clock_type::now() - t0).count());
    }
    CHECK(cudaGetLastError());
    std::printf("launch_sync_latency %.2f us\n", percentile(us, 0.5));
    spread("launch_sync_latency", us, "us");
    std::fflush(stdout);
  }

  // 3. 100 small kernels back to back, GPU time between two events.
  {
    constexpr int kN = 4096;
    int* d = nullptr;
    CHECK(cudaMalloc(&d, kN * sizeof(int)));
    CHECK(cudaMemsetAsync(d, 0, kN * sizeof(int), s));
    cudaEvent_t e0 = nullptr, e1 = nullptr;
    CHECK(cudaEventCreate(&e0));
    CHECK(cudaEventCreate(&e1));
    std::vector<double> us;
    for (int r = 0; r <= kReps; ++r) {  // repetition 0 is a warm-up
      CHECK(cudaEventRecord(e0, s));
      for (int k = 0; k < kBatch; ++k) bench_inc<<<kN / 256, 256, 0, s>>>(d, kN);
      CHECK(cudaEventRecord(e1, s));
      CHECK(cudaEventSynchronize(e1));
      float ms = 0;
      CHECK(cudaEventElapsedTime(&ms, e0, e1));
      if (r > 0) us.push_back(ms * 1000.0);
    }
    CHECK(cudaGetLastError());
    std::vector<int> back(kN, 0);
    CHECK(cudaMemcpy(back.data(), d, kN * sizeof(int), cudaMemcpyDeviceToHost));
    const int want = (kReps + 1) * kBatch;
    for (int i = 0; i < kN; ++i)
      if (back[i] != want) {
        std::fprintf(stderr, "vgpu-kernel-bench: the small kernels did not run: element %d is %d, expected %d\n", i,
                     back[i], want);
        return 1;
      }
    std::printf("kernels100_gpu_time %.2f us\n", percentile(us, 0.5));
    spread("kernels100_gpu_time", us, "us");
    CHECK(cudaEventDestroy(e0));
    CHECK(cudaEventDestroy(e1));
    CHECK(cudaFree(d));
  }
  CHECK(cudaStreamDestroy(s));
  return 0;
}
