// vgpu-bench: the figures of the performance issue in one binary, natively or
// through vgpu.
//
// The same binary measures both ways; LD_LIBRARY_PATH decides whose
// libcudart.so.13 and libcublas.so.13 it loads (it links both dynamically and
// carries no RPATH):
//   natively:      LD_LIBRARY_PATH=/usr/local/cuda/lib64 build/bin/vgpu-bench
//   through vgpu:  LD_LIBRARY_PATH=build/shim/lib VGPU_SOCKET=/path/to.sock build/bin/vgpu-bench
//
// Output: lines starting with "vgpu-bench:" (which runtime, the device, sizes,
// spreads), one machine-readable line per figure,
//   figure <name> <value> <unit>         or   figure <name> FAILED <reason>
// (names contain no spaces; tools/bench/compare.py joins two runs on them),
// and a human table at the end. A step whose CUDA or cuBLAS call fails prints
// FAILED for each of its figures and the program goes on with the next step;
// the exit status is then 1 (0 when every figure was measured, 2 on bad usage).
// Figures are informative: nothing here asserts on time.
#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "bench_common.h"

extern char** environ;

__global__ void bench_empty() {}

namespace {

using clock_type = std::chrono::steady_clock;
using vgpu_bench::parse_count;
using vgpu_bench::percentile;

constexpr size_t kKiB = size_t{1} << 10;
constexpr size_t kMiB = size_t{1} << 20;

// A failed step: its reason ends up in `figure <name> FAILED <reason>`.
struct step_failure : std::runtime_error {
  using std::runtime_error::runtime_error;
};

std::string cuda_error_text(cudaError_t err) {
  const char* name = cudaGetErrorName(err);
  return std::string(name ? name : "?") + " (" + std::to_string(static_cast<int>(err)) + ")";
}

void cuda_try(cudaError_t err, const char* what) {
  if (err != cudaSuccess) throw step_failure(std::string(what) + " returned " + cuda_error_text(err));
}

void cublas_try(cublasStatus_t st, const char* what) {
  if (st == CUBLAS_STATUS_SUCCESS) return;
  const char* name = cublasGetStatusName(st);
  throw step_failure(std::string(what) + " returned " + (name ? name : "?") + " (" +
                     std::to_string(static_cast<int>(st)) + ")");
}

#define TRY(call) cuda_try((call), #call)
#define TRY_BLAS(call) cublas_try((call), #call)

double us_since(clock_type::time_point t0) {
  return std::chrono::duration<double, std::micro>(clock_type::now() - t0).count();
}

double seconds_since(clock_type::time_point t0) {
  return std::chrono::duration<double>(clock_type::now() - t0).count();
}

// The counts every step uses, from --iters and --quick.
struct config {
  bool quick = false;
  long iters = 10000;  // samples per latency figure
  int procs = 4;
  std::set<std::string> only;  // empty: every step

  long warmup() const { return std::min(1000L, iters); }
  long launches() const { return 10 * iters; }                              // per launch-rate round
  long reps_1m() const { return std::max(5L, iters / 50); }                 // 1 MiB copies per figure
  long reps_64m() const { return std::max(2L, iters / 500); }               // 64 MiB copies per figure
  int sgemm_n() const { return quick ? 256 : 4096; }                        // the large SGEMM's size
  long sgemm_reps() const { return quick ? 2 : std::max(2L, iters / 500); }  // large SGEMMs per round
  long sgemm64_calls() const { return 2 * iters; }                          // per SGEMM-64 round
  long mix_copies() const { return std::max(2L, iters / 1000); }           // 64 MiB per child
  long mix_launches() const { return 2 * iters; }                           // launches per child
};

// Every figure printed, for the table at the end and the exit status.
struct figure_row {
  std::string name, value, unit, what;
  bool failed = false;
};
std::vector<figure_row> g_rows;

void figure(const std::string& name, double value, const char* unit, const std::string& what) {
  char buf[64];
  if (value >= 1000.0)
    std::snprintf(buf, sizeof buf, "%.0f", value);
  else
    std::snprintf(buf, sizeof buf, "%.3g", value);
  // %.3g can print an exponent for tiny values: keep it plain for awk and humans.
  if (std::strchr(buf, 'e')) std::snprintf(buf, sizeof buf, "%.6f", value);
  std::printf("figure %s %s %s\n", name.c_str(), buf, unit);
  std::fflush(stdout);
  g_rows.push_back({name, buf, unit, what, false});
}

void figure_failed(const std::string& name, const std::string& reason, const std::string& what) {
  std::printf("figure %s FAILED %s\n", name.c_str(), reason.c_str());
  std::fflush(stdout);
  g_rows.push_back({name, "FAILED", "", what + ": " + reason, true});
}

void spread(const std::string& name, const std::vector<double>& v, const char* unit) {
  std::printf("vgpu-bench: %s p10 %.2f p90 %.2f %s (%zu samples)\n", name.c_str(), percentile(v, 0.1),
              percentile(v, 0.9), unit, v.size());
}

// One step of the benchmark: its --only name and the figures it prints. When
// `run` throws, every figure it has not printed yet is reported FAILED.
struct step {
  const char* name;
  std::vector<std::pair<std::string, std::string>> figures;  // (figure name, what it is)
  std::function<void(const step&)> run;
};

const std::string& what_of(const step& s, const std::string& fig) {
  for (const auto& f : s.figures)
    if (f.first == fig) return f.second;
  static const std::string none;
  return none;
}

// Median latency of `once` over cfg.iters samples after cfg.warmup() unmeasured calls.
void latency(const config& cfg, const step& s, const std::string& fig, const std::function<void()>& once) {
  for (long i = 0; i < cfg.warmup(); ++i) once();
  std::vector<double> us;
  us.reserve(static_cast<size_t>(cfg.iters));
  for (long i = 0; i < cfg.iters; ++i) {
    const auto t0 = clock_type::now();
    once();
    us.push_back(us_since(t0));
  }
  spread(fig, us, "us");
  figure(fig, percentile(us, 0.5), "us", what_of(s, fig));
}

// The median of `rounds` rates, each from wall time; prints the spread.
double median_rate(const std::string& fig, int rounds, const std::function<double()>& one_round) {
  std::vector<double> r;
  for (int i = 0; i < rounds; ++i) r.push_back(one_round());
  std::sort(r.begin(), r.end());
  std::printf("vgpu-bench: %s rounds min %.0f max %.0f (%d rounds)\n", fig.c_str(), r.front(), r.back(), rounds);
  return percentile(r, 0.5);
}

// ---------------------------------------------------------------- the steps

void step_memgetinfo(const config& cfg, const step& s) {
  size_t f = 0, t = 0;
  latency(cfg, s, "memgetinfo", [&] { TRY(cudaMemGetInfo(&f, &t)); });
}

void step_stream_sync(const config& cfg, const step& s) {
  cudaStream_t st = nullptr;
  TRY(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  latency(cfg, s, "stream_sync_idle", [&] { TRY(cudaStreamSynchronize(st)); });
  TRY(cudaStreamDestroy(st));
}

void warm_launches(const config& cfg, cudaStream_t st) {
  // The first launches load the module; not what is measured.
  for (long i = 0; i < cfg.warmup(); ++i) bench_empty<<<1, 1, 0, st>>>();
  TRY(cudaGetLastError());
  TRY(cudaStreamSynchronize(st));
}

void step_launch_rate(const config& cfg, const step& s) {
  cudaStream_t st = nullptr;
  TRY(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  warm_launches(cfg, st);
  const long n = cfg.launches();
  // Wall time from the first launch to the end of the closing synchronize:
  // what a program posting kernels back to back sees.
  const double rate = median_rate("launch_rate", 3, [&] {
    const auto t0 = clock_type::now();
    for (long i = 0; i < n; ++i) bench_empty<<<1, 1, 0, st>>>();
    TRY(cudaGetLastError());
    TRY(cudaStreamSynchronize(st));
    return static_cast<double>(n) / seconds_since(t0);
  });
  figure("launch_rate", rate, "launches/s", what_of(s, "launch_rate"));
  TRY(cudaStreamDestroy(st));
}

void step_launch_sync(const config& cfg, const step& s) {
  cudaStream_t st = nullptr;
  TRY(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
  warm_launches(cfg, st);
  latency(cfg, s, "launch_sync", [&] {
    bench_empty<<<1, 1, 0, st>>>();
    TRY(cudaStreamSynchronize(st));
  });
  TRY(cudaGetLastError());
  TRY(cudaStreamDestroy(st));
}

void step_malloc_free(const config& cfg, const step& s) {
  latency(cfg, s, "malloc_free_1m", [&] {
    void* p = nullptr;
    TRY(cudaMalloc(&p, kMiB));
    TRY(cudaFree(p));
  });
}

// Device memory that is freed when the step ends, also when it fails.
struct device_buffer {
  void* p = nullptr;
  explicit device_buffer(size_t n) { TRY(cudaMalloc(&p, n)); }
  ~device_buffer() {
    if (p) cudaFree(p);
  }
  device_buffer(const device_buffer&) = delete;
  device_buffer& operator=(const device_buffer&) = delete;
};

// Host memory: pageable (malloc, every page touched so that page faults are not
// timed) or pinned (cudaMallocHost).
struct host_buffer {
  void* p = nullptr;
  bool pinned = false;
  host_buffer(size_t n, bool pin) : pinned(pin) {
    if (pin) {
      TRY(cudaMallocHost(&p, n));
    } else {
      p = std::malloc(n);
      if (!p) throw step_failure("malloc of " + std::to_string(n) + " bytes failed");
    }
    std::memset(p, 0x5a, n);
  }
  ~host_buffer() {
    if (!p) return;
    if (pinned)
      cudaFreeHost(p);
    else
      std::free(p);
  }
  host_buffer(const host_buffer&) = delete;
  host_buffer& operator=(const host_buffer&) = delete;
};

void step_copy_4k(const config& cfg, const step& s) {
  device_buffer dev(4 * kKiB);
  host_buffer host(4 * kKiB, false);
  latency(cfg, s, "h2d_4k_pageable", [&] { TRY(cudaMemcpy(dev.p, host.p, 4 * kKiB, cudaMemcpyHostToDevice)); });
  latency(cfg, s, "d2h_4k_pageable", [&] { TRY(cudaMemcpy(host.p, dev.p, 4 * kKiB, cudaMemcpyDeviceToHost)); });
}

// Bandwidth of synchronous cudaMemcpy: bytes moved over the wall time of `reps`
// copies after one unmeasured copy, in GB/s (10^9 bytes per second).
void bandwidth(const step& s, const char* size_tag, size_t bytes, long reps) {
  device_buffer dev(bytes);
  for (const bool pinned : {false, true}) {
    host_buffer host(bytes, pinned);
    for (const bool h2d : {true, false}) {
      const std::string fig = std::string(h2d ? "h2d_" : "d2h_") + size_tag + (pinned ? "_pinned" : "_pageable");
      void* dst = h2d ? dev.p : host.p;
      const void* src = h2d ? host.p : dev.p;
      const cudaMemcpyKind kind = h2d ? cudaMemcpyHostToDevice : cudaMemcpyDeviceToHost;
      try {
        TRY(cudaMemcpy(dst, src, bytes, kind));  // warm-up
        const auto t0 = clock_type::now();
        for (long i = 0; i < reps; ++i) TRY(cudaMemcpy(dst, src, bytes, kind));
        const double sec = seconds_since(t0);
        figure(fig, static_cast<double>(bytes) * static_cast<double>(reps) / sec / 1e9, "GB/s", what_of(s, fig));
      } catch (const step_failure& e) {
        // One direction failing says nothing about the others: go on.
        figure_failed(fig, e.what(), what_of(s, fig));
      }
    }
  }
}

void step_copy_1m(const config& cfg, const step& s) { bandwidth(s, "1m", kMiB, cfg.reps_1m()); }
void step_copy_64m(const config& cfg, const step& s) { bandwidth(s, "64m", 64 * kMiB, cfg.reps_64m()); }

// Column-major n x n operands with values that are not all zero (GPU power, and
// so clocks, can depend on the data).
struct gemm_operands {
  device_buffer a, b, c;
  explicit gemm_operands(int n)
      : a(bytes(n)), b(bytes(n)), c(bytes(n)) {
    std::vector<float> h(static_cast<size_t>(n) * n);
    for (size_t i = 0; i < h.size(); ++i) h[i] = static_cast<float>((i * 2654435761u) % 1000) / 1000.0f - 0.5f;
    TRY(cudaMemcpy(a.p, h.data(), bytes(n), cudaMemcpyHostToDevice));
    TRY(cudaMemcpy(b.p, h.data(), bytes(n), cudaMemcpyHostToDevice));
    TRY(cudaMemset(c.p, 0, bytes(n)));
  }
  static size_t bytes(int n) { return static_cast<size_t>(n) * n * sizeof(float); }
  float* A() const { return static_cast<float*>(a.p); }
  float* B() const { return static_cast<float*>(b.p); }
  float* C() const { return static_cast<float*>(c.p); }
};

struct blas_handle {
  cublasHandle_t h = nullptr;
  cudaStream_t st = nullptr;
  blas_handle() {
    TRY_BLAS(cublasCreate(&h));
    TRY(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    TRY_BLAS(cublasSetStream(h, st));
  }
  ~blas_handle() {
    if (h) cublasDestroy(h);
    if (st) cudaStreamDestroy(st);
  }
  blas_handle(const blas_handle&) = delete;
  blas_handle& operator=(const blas_handle&) = delete;
};

void sgemm(const blas_handle& bh, const gemm_operands& g, int n) {
  const float one = 1.0f, zero = 0.0f;
  TRY_BLAS(cublasSgemm(bh.h, CUBLAS_OP_N, CUBLAS_OP_N, n, n, n, &one, g.A(), n, g.B(), n, &zero, g.C(), n));
}

std::string sgemm_figure(const config& cfg) { return "sgemm_" + std::to_string(cfg.sgemm_n()); }

// The large SGEMM: GPU time between two events around `reps` calls, in three
// rounds after `reps` unmeasured calls (cuBLAS picks and loads its kernel on the
// first; the GPU's clocks settle on the others); the median round counts.
void step_sgemm(const config& cfg, const step& s) {
  const int n = cfg.sgemm_n();
  const std::string fig = sgemm_figure(cfg);
  if (cfg.quick) std::printf("vgpu-bench: --quick: SGEMM %d^3 instead of 4096^3\n", n);
  blas_handle bh;
  gemm_operands g(n);
  const long reps = cfg.sgemm_reps();
  for (long i = 0; i < reps; ++i) sgemm(bh, g, n);
  TRY(cudaStreamSynchronize(bh.st));
  cudaEvent_t e0 = nullptr, e1 = nullptr;
  TRY(cudaEventCreate(&e0));
  TRY(cudaEventCreate(&e1));
  const double flops = 2.0 * n * static_cast<double>(n) * n * static_cast<double>(reps);
  std::vector<double> tflops;
  try {
    for (int round = 0; round < 3; ++round) {
      TRY(cudaEventRecord(e0, bh.st));
      for (long i = 0; i < reps; ++i) sgemm(bh, g, n);
      TRY(cudaEventRecord(e1, bh.st));
      TRY(cudaEventSynchronize(e1));
      float ms = 0;
      TRY(cudaEventElapsedTime(&ms, e0, e1));
      if (!(ms > 0)) throw step_failure("the events measured " + std::to_string(ms) + " ms");
      tflops.push_back(flops / (static_cast<double>(ms) * 1e-3) / 1e12);
    }
  } catch (...) {
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    throw;
  }
  cudaEventDestroy(e0);
  cudaEventDestroy(e1);
  std::sort(tflops.begin(), tflops.end());
  std::printf("vgpu-bench: %s %ld calls per round, rounds min %.4g max %.4g TFLOP/s (3 rounds)\n", fig.c_str(), reps,
              tflops.front(), tflops.back());
  figure(fig, percentile(tflops, 0.5), "TFLOP/s", what_of(s, fig));
}

// SGEMM 64^3 posted back to back, one synchronize at the end: the call rate a
// program sees (host-bound natively; the per-call path through vgpu).
void step_sgemm_64(const config& cfg, const step& s) {
  constexpr int n = 64;
  blas_handle bh;
  gemm_operands g(n);
  for (long i = 0; i < std::min(100L, cfg.iters); ++i) sgemm(bh, g, n);
  TRY(cudaStreamSynchronize(bh.st));
  const long calls = cfg.sgemm64_calls();
  const double rate = median_rate("sgemm_64_rate", 3, [&] {
    const auto t0 = clock_type::now();
    for (long i = 0; i < calls; ++i) sgemm(bh, g, n);
    TRY(cudaStreamSynchronize(bh.st));
    return static_cast<double>(calls) / seconds_since(t0);
  });
  figure("sgemm_64_rate", rate, "calls/s", what_of(s, "sgemm_64_rate"));
}

// ---------------------------------------------------------------- --procs
//
// The parent starts N copies of this program (posix_spawn of /proc/self/exe
// with --child-mix), each its own CUDA process (through vgpu: its own session).
// Every child prepares (context, 64 MiB device and pinned buffers, warm-up
// copy and launches), says "ready", and then runs two phases, each only when
// the parent says "go" to all of them at once:
//   1. C copies of 64 MiB pinned host -> device,
//   2. L empty-kernel launches on its stream, then one synchronize.
// For each phase a child reports the CLOCK_MONOTONIC (system-wide) times it
// started and ended; the aggregate is everything moved (or launched) over the
// span from the first start to the last end, so a child that ran alone for a
// while cannot inflate it.

double monotonic_s() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

bool wait_go() {
  char c = 0;
  for (;;) {
    const ssize_t r = read(0, &c, 1);
    if (r == 1) return c == 'g';
    if (r < 0 && errno == EINTR) continue;
    return false;
  }
}

int child_mix(long copies, long launches) {
  try {
    TRY(cudaSetDevice(0));
    device_buffer dev(64 * kMiB);
    host_buffer host(64 * kMiB, true);
    cudaStream_t st = nullptr;
    TRY(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    TRY(cudaMemcpy(dev.p, host.p, 64 * kMiB, cudaMemcpyHostToDevice));
    for (int i = 0; i < 100; ++i) bench_empty<<<1, 1, 0, st>>>();
    TRY(cudaGetLastError());
    TRY(cudaStreamSynchronize(st));
    std::printf("ready\n");
    std::fflush(stdout);

    if (!wait_go()) return 3;
    double t0 = monotonic_s();
    for (long i = 0; i < copies; ++i) TRY(cudaMemcpy(dev.p, host.p, 64 * kMiB, cudaMemcpyHostToDevice));
    double t1 = monotonic_s();
    std::printf("copy %.9f %.9f %.0f\n", t0, t1, static_cast<double>(copies) * 64.0 * kMiB);
    std::fflush(stdout);

    if (!wait_go()) return 3;
    t0 = monotonic_s();
    for (long i = 0; i < launches; ++i) bench_empty<<<1, 1, 0, st>>>();
    TRY(cudaGetLastError());
    TRY(cudaStreamSynchronize(st));
    t1 = monotonic_s();
    std::printf("launch %.9f %.9f %ld\n", t0, t1, launches);
    std::fflush(stdout);
    cudaStreamDestroy(st);
  } catch (const step_failure& e) {
    std::printf("error %s\n", e.what());
    std::fflush(stdout);
    return 1;
  }
  return 0;
}

struct child_proc {
  pid_t pid = -1;
  int to = -1;    // its stdin
  int from = -1;  // its stdout
  std::string buf;
};

// The next line a child writes, waiting up to `timeout_s`.
std::string read_line(child_proc& c, int timeout_s) {
  const auto deadline = clock_type::now() + std::chrono::seconds(timeout_s);
  for (;;) {
    const size_t nl = c.buf.find('\n');
    if (nl != std::string::npos) {
      std::string line = c.buf.substr(0, nl);
      c.buf.erase(0, nl + 1);
      return line;
    }
    const long left_ms = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - clock_type::now()).count();
    if (left_ms <= 0) throw step_failure("a child said nothing within " + std::to_string(timeout_s) + " s");
    pollfd p{c.from, POLLIN, 0};
    const int r = poll(&p, 1, static_cast<int>(std::min(left_ms, 1000L)));
    if (r < 0 && errno != EINTR) throw step_failure(std::string("poll: ") + std::strerror(errno));
    if (r <= 0) continue;
    char tmp[512];
    const ssize_t n = read(c.from, tmp, sizeof tmp);
    if (n == 0) throw step_failure("a child exited early (its stderr is above)");
    if (n < 0 && errno != EINTR) throw step_failure(std::string("read: ") + std::strerror(errno));
    if (n > 0) c.buf.append(tmp, static_cast<size_t>(n));
  }
}

struct children {
  std::vector<child_proc> all;
  ~children() {
    // Whatever happened, no child outlives the step.
    for (child_proc& c : all) {
      if (c.to >= 0) close(c.to);
      if (c.from >= 0) close(c.from);
      if (c.pid > 0) {
        int status = 0;
        const auto deadline = clock_type::now() + std::chrono::seconds(30);
        while (waitpid(c.pid, &status, WNOHANG) == 0) {
          if (clock_type::now() > deadline) {
            kill(c.pid, SIGKILL);
            waitpid(c.pid, &status, 0);
            break;
          }
          usleep(10000);
        }
      }
    }
  }
};

void spawn_child(children& kids, const config& cfg) {
  int in[2], out[2];
  if (pipe2(in, O_CLOEXEC) != 0) throw step_failure(std::string("pipe: ") + std::strerror(errno));
  if (pipe2(out, O_CLOEXEC) != 0) {
    close(in[0]);
    close(in[1]);
    throw step_failure(std::string("pipe: ") + std::strerror(errno));
  }
  child_proc c;
  c.to = in[1];
  c.from = out[0];
  // The parent ignores SIGPIPE (a child that died must not kill it through a
  // write); the children get the default back.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t dflt;
  sigemptyset(&dflt);
  sigaddset(&dflt, SIGPIPE);
  posix_spawnattr_setsigdefault(&attr, &dflt);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGDEF);
  posix_spawn_file_actions_t fa;
  posix_spawn_file_actions_init(&fa);
  posix_spawn_file_actions_adddup2(&fa, in[0], 0);  // dup2 clears O_CLOEXEC on 0 and 1
  posix_spawn_file_actions_adddup2(&fa, out[1], 1);
  const std::string copies = std::to_string(cfg.mix_copies()), launches = std::to_string(cfg.mix_launches());
  std::vector<std::string> args{"vgpu-bench", "--child-mix", copies, launches};
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(&a[0]);
  argv.push_back(nullptr);
  const int rc = posix_spawn(&c.pid, "/proc/self/exe", &fa, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&fa);
  posix_spawnattr_destroy(&attr);
  close(in[0]);
  close(out[1]);
  if (rc != 0) {
    c.pid = -1;
    kids.all.push_back(c);
    throw step_failure(std::string("posix_spawn /proc/self/exe: ") + std::strerror(rc));
  }
  kids.all.push_back(c);
}

void go_all(children& kids) {
  for (child_proc& c : kids.all)
    if (write(c.to, "g", 1) != 1) throw step_failure(std::string("write to a child: ") + std::strerror(errno));
}

// Reads one report line "<tag> t0 t1 amount" from every child; returns the
// total amount over the span from the earliest start to the latest end.
double phase_result(children& kids, const char* tag, int timeout_s, double* span_s) {
  double first = 1e300, last = -1e300, total = 0;
  for (child_proc& c : kids.all) {
    const std::string line = read_line(c, timeout_s);
    std::istringstream is(line);
    std::string t;
    double t0 = 0, t1 = 0, amount = 0;
    is >> t >> t0 >> t1 >> amount;
    if (t == "error") throw step_failure("a child failed: " + line.substr(6));
    if (t != tag || !is) throw step_failure("a child said '" + line + "'");
    first = std::min(first, t0);
    last = std::max(last, t1);
    total += amount;
  }
  *span_s = last - first;
  if (!(*span_s > 0)) throw step_failure("the children's span is not positive");
  return total / *span_s;
}

void step_procs(const config& cfg, const step& s) {
  const std::string copy_fig = "procs" + std::to_string(cfg.procs) + "_h2d_64m_pinned";
  const std::string launch_fig = "procs" + std::to_string(cfg.procs) + "_launch_rate";
  const int timeout_s = 300;
  std::printf("vgpu-bench: --procs %d: each child %ld x 64 MiB pinned H2D, then %ld launches\n", cfg.procs,
              cfg.mix_copies(), cfg.mix_launches());
  std::fflush(stdout);
  children kids;
  for (int i = 0; i < cfg.procs; ++i) spawn_child(kids, cfg);
  for (child_proc& c : kids.all) {
    const std::string line = read_line(c, timeout_s);
    if (line.rfind("error ", 0) == 0) throw step_failure("a child failed: " + line.substr(6));
    if (line != "ready") throw step_failure("a child said '" + line + "'");
  }
  double span = 0;
  go_all(kids);
  const double bps = phase_result(kids, "copy", timeout_s, &span);
  std::printf("vgpu-bench: %s span %.3f s\n", copy_fig.c_str(), span);
  figure(copy_fig, bps / 1e9, "GB/s", what_of(s, copy_fig));
  go_all(kids);
  const double lps = phase_result(kids, "launch", timeout_s, &span);
  std::printf("vgpu-bench: %s span %.3f s\n", launch_fig.c_str(), span);
  figure(launch_fig, lps, "launches/s", what_of(s, launch_fig));
  for (child_proc& c : kids.all) {
    close(c.to);
    c.to = -1;
    int status = 0;
    waitpid(c.pid, &status, 0);
    c.pid = -1;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
      std::printf("vgpu-bench: warning: a child ended with status %d after reporting\n", status);
  }
}

// ---------------------------------------------------------------- main

std::vector<step> make_steps(const config& cfg) {
  const std::string P = std::to_string(cfg.procs);
  const std::string sg = sgemm_figure(cfg);
  auto bw = [](const char* size_tag, const char* size_text) {
    std::vector<std::pair<std::string, std::string>> f;
    for (const char* mem : {"pageable", "pinned"})
      for (const char* dir : {"h2d", "d2h"})
        f.push_back({std::string(dir) + "_" + size_tag + "_" + mem,
                     std::string(size_text) + " " + (dir[0] == 'h' ? "H2D" : "D2H") + " cudaMemcpy, " + mem});
    return f;
  };
  using F = std::vector<std::pair<std::string, std::string>>;
  std::vector<step> steps{
      {"memgetinfo", F{{"memgetinfo", "cudaMemGetInfo round trip, median"}},
       [&cfg](const step& s) { step_memgetinfo(cfg, s); }},
      {"stream_sync", F{{"stream_sync_idle", "cudaStreamSynchronize, idle stream, median"}},
       [&cfg](const step& s) { step_stream_sync(cfg, s); }},
      {"launch_rate", F{{"launch_rate", "empty kernels posted back to back + 1 sync, wall"}},
       [&cfg](const step& s) { step_launch_rate(cfg, s); }},
      {"launch_sync", F{{"launch_sync", "empty kernel + cudaStreamSynchronize, median"}},
       [&cfg](const step& s) { step_launch_sync(cfg, s); }},
      {"malloc_free", F{{"malloc_free_1m", "cudaMalloc + cudaFree of 1 MiB, median"}},
       [&cfg](const step& s) { step_malloc_free(cfg, s); }},
      {"copy_4k",
       F{{"h2d_4k_pageable", "4 KiB H2D cudaMemcpy, pageable, median"},
         {"d2h_4k_pageable", "4 KiB D2H cudaMemcpy, pageable, median"}},
       [&cfg](const step& s) { step_copy_4k(cfg, s); }},
      {"copy_1m", bw("1m", "1 MiB"), [&cfg](const step& s) { step_copy_1m(cfg, s); }},
      {"copy_64m", bw("64m", "64 MiB"), [&cfg](const step& s) { step_copy_64m(cfg, s); }},
      {"sgemm", F{{sg, "cuBLAS SGEMM " + std::to_string(cfg.sgemm_n()) + "^3, GPU time between events"}},
       [&cfg](const step& s) { step_sgemm(cfg, s); }},
      {"sgemm_64", F{{"sgemm_64_rate", "cuBLAS SGEMM 64^3 posted back to back + 1 sync, wall"}},
       [&cfg](const step& s) { step_sgemm_64(cfg, s); }},
  };
  if (cfg.procs > 0)
    steps.push_back({"procs",
                     F{{"procs" + P + "_h2d_64m_pinned", P + " processes at once: 64 MiB pinned H2D, aggregate"},
                       {"procs" + P + "_launch_rate", P + " processes at once: launches + 1 sync, aggregate"}},
                     [&cfg](const step& s) { step_procs(cfg, s); }});
  return steps;
}

const char* const kStepNames[] = {"memgetinfo", "stream_sync", "launch_rate", "launch_sync", "malloc_free", "copy_4k",
                                  "copy_1m",    "copy_64m",    "sgemm",       "sgemm_64",    "procs"};

void usage(FILE* to) {
  std::fprintf(
      to,
      "usage: vgpu-bench [all] [--quick] [--iters N] [--procs N] [--only STEP,STEP...]\n"
      "\n"
      "Measures the figures of the vgpu performance issue and prints each as one line\n"
      "  figure <name> <value> <unit>        (or: figure <name> FAILED <reason>)\n"
      "then a table. Steps (for --only) and their figures:\n"
      "  memgetinfo    memgetinfo            cudaMemGetInfo round trip, median us\n"
      "  stream_sync   stream_sync_idle      cudaStreamSynchronize on an idle stream, median us\n"
      "  launch_rate   launch_rate           empty kernels posted back to back, then one sync;\n"
      "                                      wall time, median of 3 rounds: launches/s\n"
      "  launch_sync   launch_sync           one empty kernel + cudaStreamSynchronize, median us\n"
      "  malloc_free   malloc_free_1m        cudaMalloc + cudaFree of 1 MiB, median us\n"
      "  copy_4k       h2d_4k_pageable d2h_4k_pageable     4 KiB cudaMemcpy, median us\n"
      "  copy_1m       {h2d,d2h}_1m_{pageable,pinned}      1 MiB cudaMemcpy, GB/s (10^9 B/s)\n"
      "  copy_64m      {h2d,d2h}_64m_{pageable,pinned}     64 MiB cudaMemcpy, GB/s\n"
      "                (pinned: cudaMallocHost; bytes over the wall time of all copies)\n"
      "  sgemm         sgemm_4096            cuBLAS SGEMM 4096^3, max(2,N/500) calls between two\n"
      "                                      events (GPU time) after as many unmeasured ones,\n"
      "                                      median of 3 rounds: TFLOP/s (sgemm_256 with --quick)\n"
      "  sgemm_64      sgemm_64_rate         SGEMM 64^3 posted back to back, one sync at the end,\n"
      "                                      wall time, median of 3 rounds: calls/s\n"
      "  procs         procsN_h2d_64m_pinned procsN_launch_rate\n"
      "                                      N processes (this program again) at once: 64 MiB\n"
      "                                      pinned H2D copies, then launches; aggregate GB/s and\n"
      "                                      launches/s over the span from first start to last end\n"
      "\n"
      "  --iters N   samples per latency figure (default 10000, 100 with --quick); the other\n"
      "              counts follow: 10N launches per rate round, max(5,N/50) 1 MiB and\n"
      "              max(2,N/500) 64 MiB copies, 2N SGEMM-64 calls per round, per child\n"
      "              max(2,N/1000) 64 MiB copies and 2N launches; warm-up min(1000,N) calls\n"
      "  --quick     tiny counts and SGEMM 256 instead of 4096: a smoke test (seconds on the\n"
      "              reference executor); its figures are not the issue's\n"
      "  --procs N   child processes of the procs step (default 4; 0 leaves the step out)\n"
      "  --only L    only the steps in the comma-separated list L\n"
      "  --help      this text\n"
      "\n"
      "Exit status: 0 when every figure was measured, 1 when one FAILED, 2 on bad usage.\n"
      "Through vgpu: LD_LIBRARY_PATH=<build>/shim/lib VGPU_SOCKET=<socket> vgpu-bench\n"
      "Natively:     LD_LIBRARY_PATH=/usr/local/cuda/lib64 vgpu-bench\n"
      "Compare:      tools/bench/compare.py native.txt vgpu.txt\n");
}

}  // namespace

int main(int argc, char** argv) {
  // The procs step's children: vgpu-bench --child-mix COPIES LAUNCHES.
  if (argc == 4 && std::strcmp(argv[1], "--child-mix") == 0) {
    long copies = 0, launches = 0;
    if (!parse_count(argv[2], &copies) || !parse_count(argv[3], &launches)) return 2;
    return child_mix(copies, launches);
  }

  config cfg;
  bool iters_given = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&](const char* opt) -> const char* {
      const std::string eq = std::string(opt) + "=";
      if (a.compare(0, eq.size(), eq) == 0) return argv[i] + eq.size();
      if (a == opt && i + 1 < argc) return argv[++i];
      return nullptr;
    };
    if (a == "--help" || a == "-h") {
      usage(stdout);
      return 0;
    } else if (a == "all") {
    } else if (a == "--quick") {
      cfg.quick = true;
    } else if (a == "--iters" || a.rfind("--iters=", 0) == 0) {
      if (!parse_count(value("--iters"), &cfg.iters)) {
        std::fprintf(stderr, "vgpu-bench: --iters needs a count from 1 to 100000000\n");
        return 2;
      }
      iters_given = true;
    } else if (a == "--procs" || a.rfind("--procs=", 0) == 0) {
      const char* v = value("--procs");
      long n = 0;
      if (v && std::strcmp(v, "0") == 0) {
        cfg.procs = 0;
      } else if (!parse_count(v, &n) || n > 64) {
        std::fprintf(stderr, "vgpu-bench: --procs needs a count from 0 to 64\n");
        return 2;
      } else {
        cfg.procs = static_cast<int>(n);
      }
    } else if (a == "--only" || a.rfind("--only=", 0) == 0) {
      const char* v = value("--only");
      if (!v || !*v) {
        std::fprintf(stderr, "vgpu-bench: --only needs a list of steps\n");
        return 2;
      }
      std::stringstream ss(v);
      std::string name;
      while (std::getline(ss, name, ',')) {
        if (std::find(std::begin(kStepNames), std::end(kStepNames), name) == std::end(kStepNames)) {
          std::fprintf(stderr, "vgpu-bench: --only: unknown step '%s' (see --help)\n", name.c_str());
          return 2;
        }
        cfg.only.insert(name);
      }
    } else {
      std::fprintf(stderr, "vgpu-bench: unknown argument '%s'\n\n", argv[i]);
      usage(stderr);
      return 2;
    }
  }
  if (cfg.quick && !iters_given) cfg.iters = 100;

  using info_fn = const char* (*)();
  auto info = reinterpret_cast<info_fn>(dlsym(RTLD_DEFAULT, "vgpuShimInfo"));
  if (info) {
    const char* s = info();
    std::printf("vgpu-bench: vgpu (%s)\n", s ? s : "no info");
  } else {
    std::printf("vgpu-bench: native (NVIDIA's CUDA runtime)\n");
  }
  std::printf("vgpu-bench: %s, %ld latency samples per figure, %d child processes\n",
              cfg.quick ? "--quick (smoke test: small counts, SGEMM 256)" : "full", cfg.iters, cfg.procs);

  // Without a device nothing can be measured: every figure fails, with why.
  std::string no_device;
  cudaDeviceProp prop;
  std::memset(&prop, 0, sizeof prop);
  try {
    TRY(cudaSetDevice(0));
    TRY(cudaGetDeviceProperties(&prop, 0));
    prop.name[sizeof prop.name - 1] = '\0';
    std::printf("vgpu-bench: device 0: %s\n", prop.name);
  } catch (const step_failure& e) {
    no_device = e.what();
  }
  std::fflush(stdout);

  signal(SIGPIPE, SIG_IGN);  // see spawn_child
  int late_failures = 0;
  const std::vector<step> steps = make_steps(cfg);
  for (const step& s : steps) {
    if (!cfg.only.empty() && !cfg.only.count(s.name)) continue;
    const size_t before = g_rows.size();
    try {
      if (!no_device.empty()) throw step_failure(no_device);
      s.run(s);
      // A step's posted work may fail after its last call: report it here, not
      // in the next step's figures.
      TRY(cudaDeviceSynchronize());
    } catch (const step_failure& e) {
      size_t missing = 0;
      for (const auto& f : s.figures) {
        bool printed = false;
        for (size_t i = before; i < g_rows.size(); ++i) printed = printed || g_rows[i].name == f.first;
        if (!printed) {
          figure_failed(f.first, e.what(), f.second);
          ++missing;
        }
      }
      // Every figure was printed, then the closing synchronize failed: the
      // figures may not stand for work that really ran. Say so, and fail.
      if (missing == 0) {
        std::printf("vgpu-bench: error after step %s: %s (its figures above are suspect)\n", s.name, e.what());
        ++late_failures;
      }
    } catch (const std::exception& e) {
      for (const auto& f : s.figures) figure_failed(f.first, e.what(), f.second);
    }
  }

  int failed = 0;
  // The header does not start with "figure ": only figure lines do (compare.py).
  std::printf("\n%-24s %14s %-11s %s\n", "name", "value", "unit", "what");
  for (const figure_row& r : g_rows) {
    std::printf("%-24s %14s %-11s %s\n", r.name.c_str(), r.value.c_str(), r.unit.c_str(), r.what.c_str());
    failed += r.failed;
  }
  std::printf("vgpu-bench: %zu figures, %d failed\n", g_rows.size(), failed);
  return failed == 0 && late_failures == 0 ? 0 : 1;
}
