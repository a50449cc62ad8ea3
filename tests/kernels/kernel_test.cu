// vgpu-kernel-test: an ordinary CUDA program with kernels, the "unchanged guest
// process" for kernel support.
//
// Built by nvcc with the SHARED CUDA runtime and no RPATH, so that it runs
// natively on a GPU (LD_LIBRARY_PATH=/usr/local/cuda/lib64), or through vgpu
// (LD_LIBRARY_PATH=<vgpu's shim folder>) without being rebuilt. Its fatbin keeps
// uncompressed PTX (the CPU reference executor reads parameter layouts from it).
//
//   vgpu-kernel-test [--expect-vgpu] [--reference] [--seed N] [--count N] [--mib N] <subcommand>
//     marshal   (only with --reference) launches of many parameter shapes, read back from the
//               mediator's launch records (vgpuDebugLaunchRecord) and compared byte for byte
//               with the CUDA ABI's packing, computed here from the C++ types
//     compute   (needs a GPU) vector add, saxpy, reduction + atomics, struct by value, 2D/3D
//               grids, dynamic shared memory, __device__ and __constant__ symbols
//     dlopen    kernels of a shared library loaded with dlopen() after main() started
//     threads   4 host threads x 200 launches on their own streams
//     hostfunc  cudaLaunchHostFunc / cudaStreamAddCallback interleaved with work on 2 streams
//     deferred  asynchronous launch errors surface at the next synchronising call;
//               configuration errors at once; normal work goes on afterwards
//     all       every subcommand valid for the mode (--reference: marshal dlopen threads
//               hostfunc deferred; else compute dlopen threads hostfunc deferred)
//   helper for the integration tests:
//     flood     allocates --mib N MiB, launches --count N kernels back to back on 2 streams
//               without waiting, prints QUEUED after the first 1000 (to be killed meanwhile)
//
// --reference: the mediator runs the CPU reference executor: kernels are recorded, not run,
// so results of kernels are not checked (launch records are, where the subcommand says).
// --expect-vgpu: fail unless vgpu's shim (symbol vgpuShimInfo) is loaded.
// Prints `PASS <name>` / `FAIL <name>: <detail>` per check and a summary; exits 1 when
// any check failed or none passed, 2 on bad usage.
#include <cuda_runtime.h>
#include <dlfcn.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstdarg>
#include <chrono>
#include <cinttypes>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "kernel_types.h"
#include "launch_record.h"  // actors/executor: the record format of vgpuDebugLaunchRecord

// ============================================================================ kernels

struct Mixed {  // mixed alignments: 1, 8, 2 (padding inside)
  char c;
  double d;
  short s[3];
};
static_assert(sizeof(Mixed) == 24 && alignof(Mixed) == 8, "unexpected host layout of Mixed");

struct Big {  // 4096 bytes by value
  int w[1024];
};
static_assert(sizeof(Big) == 4096 && alignof(Big) == 4, "unexpected host layout of Big");

__global__ void k_mixed(float* p, int n, Mixed m) {
  if (blockIdx.x == 0 && threadIdx.x == 0) p[0] = static_cast<float>(m.d + n + m.c + m.s[2]);
}

__device__ int g_sink;
__global__ void k_big(char tag, Big b, double tail) {
  if (threadIdx.x == 0 && tail == 12345.0) g_sink = b.w[tag & 1023];
}

__global__ void k_none() {}

__global__ void k_scalars(char a, short b, int c, long long d, float e, double f, void* g, char h, int* i, short j,
                          unsigned char k, double l) {
  if (threadIdx.x == 0 && blockIdx.x == 0 && i)
    *i = a + b + c + static_cast<int>(d) + static_cast<int>(e) + static_cast<int>(f) + (g ? 1 : 0) + h + j + k +
         static_cast<int>(l);
}

template <typename T, int N>
__global__ void k_tmpl(T* out, T v) {
  if (threadIdx.x < N) out[threadIdx.x] = v;
}

// --- compute
__global__ void k_vadd(const float* a, const float* b, float* c, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) c[i] = a[i] + b[i];
}

__global__ void k_saxpy(int n, float a, const float* x, float* y) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = a * x[i] + y[i];
}

constexpr int kReduceBlock = 256;
__global__ void k_reduce(const unsigned* in, int n, unsigned long long* sum, unsigned* bins) {
  __shared__ unsigned long long s[kReduceBlock];
  unsigned long long v = 0;
  for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < n; i += gridDim.x * blockDim.x) {
    v += in[i];
    atomicAdd(&bins[in[i] & 63], 1u);
  }
  s[threadIdx.x] = v;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w >>= 1) {
    if (threadIdx.x < w) s[threadIdx.x] += s[threadIdx.x + w];
    __syncthreads();
  }
  if (threadIdx.x == 0) atomicAdd(sum, s[0]);
}

struct Params {
  char tag;
  double mul;
  int scale;
  short bias[3];
  float off;
};
struct OutRec {
  long long a;
  double b;
};
__global__ void k_struct(Params p, OutRec* out, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    out[i].a = static_cast<long long>(i) * p.scale + p.tag + p.bias[i % 3];
    out[i].b = p.mul * i + p.off;
  }
}

__global__ void k_transpose(const float* in, float* out, int w, int h) {
  const int x = blockIdx.x * blockDim.x + threadIdx.x;
  const int y = blockIdx.y * blockDim.y + threadIdx.y;
  if (x < w && y < h) out[x * h + y] = in[y * w + x];
}

__global__ void k_3d(int* out, int X, int Y, int Z, int salt) {
  const int x = blockIdx.x * blockDim.x + threadIdx.x;
  const int y = blockIdx.y * blockDim.y + threadIdx.y;
  const int z = blockIdx.z * blockDim.z + threadIdx.z;
  if (x < X && y < Y && z < Z) out[(z * Y + y) * X + x] = (x * 131 + y * 31 + z * 7) ^ salt;
}

// Reverses each block's chunk of blockDim.x ints through dynamic shared memory.
__global__ void k_dyn_reverse(const int* in, int* out) {
  extern __shared__ int s_rev[];
  const int base = blockIdx.x * blockDim.x;
  s_rev[threadIdx.x] = in[base + threadIdx.x];
  __syncthreads();
  out[base + threadIdx.x] = s_rev[blockDim.x - 1 - threadIdx.x];
}

// Same with `per` ints per thread: needs per * blockDim.x * 4 bytes of shared memory.
__global__ void k_dyn_big(const int* in, int* out, int per) {
  extern __shared__ int s_big[];
  const int chunk = per * blockDim.x;
  const int base = blockIdx.x * chunk;
  for (int k = 0; k < per; ++k) s_big[threadIdx.x + k * blockDim.x] = in[base + threadIdx.x + k * blockDim.x];
  __syncthreads();
  for (int k = 0; k < per; ++k) {
    const int j = threadIdx.x + k * blockDim.x;
    out[base + j] = s_big[chunk - 1 - j];
  }
}

__device__ int g_table[256];
__device__ float g_factor;
__device__ int g_result[256];
__global__ void k_globals() {
  const int i = threadIdx.x;
  if (i < 256) g_result[i] = g_table[i] * 3 + static_cast<int>(g_factor);
}

__constant__ int c_lut[64];
__global__ void k_lut(const unsigned* in, int* out, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = c_lut[in[i] & 63] ^ static_cast<int>(in[i]);
}

// --- small kernels for threads / hostfunc / deferred / flood
__global__ void k_add(int* d, int n, int v) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) d[i] += v;
}

__global__ void k_set(int* d, int n, int v) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) d[i] = v;
}

__global__ void k_dyn_touch(int* out) {
  extern __shared__ int s_touch[];
  s_touch[threadIdx.x] = threadIdx.x;
  __syncthreads();
  if (threadIdx.x == 0) out[0] = s_touch[blockDim.x - 1];
}

__global__ void k_spin(long long cycles) {
  const long long t0 = clock64();
  while (clock64() - t0 < cycles) {
  }
}

// The mangled names the compiler gives these kernels (Itanium C++ ABI; checked
// against `cuobjdump -symbols` of this program).
constexpr const char* kMixedName = "_Z7k_mixedPfi5Mixed";
constexpr const char* kBigName = "_Z5k_bigc3Bigd";
constexpr const char* kNoneName = "_Z6k_nonev";
constexpr const char* kScalarsName = "_Z9k_scalarscsixfdPvcPishd";
constexpr const char* kTmplD3Name = "_Z6k_tmplIdLi3EEvPT_S0_";
constexpr const char* kTmplS7Name = "_Z6k_tmplIsLi7EEvPT_S0_";
constexpr const char* kAddName = "_Z5k_addPiii";

// ============================================================================ host side

namespace {

struct reporter {
  std::atomic<int> passed{0}, failed{0};
  void pass(const std::string& name) {
    ++passed;
    std::printf("PASS %s\n", name.c_str());
  }
  void fail(const std::string& name, const std::string& detail) {
    ++failed;
    std::printf("FAIL %s: %s\n", name.c_str(), detail.c_str());
    std::fflush(stdout);
  }
  bool check(const std::string& name, bool ok, const std::string& detail) {
    if (ok) pass(name);
    else fail(name, detail);
    return ok;
  }
};

reporter R;
bool g_expect_vgpu = false;
bool g_reference = false;
uint64_t g_seed = 1;

const char* err_name(cudaError_t e) {
  const char* n = cudaGetErrorName(e);
  return n ? n : "(null name)";
}

std::string rc_text(cudaError_t e) {
  return std::string(err_name(e)) + " (" + std::to_string(static_cast<int>(e)) + ")";
}

bool ok_rc(const std::string& name, cudaError_t got) {
  return R.check(name, got == cudaSuccess, "returned " + rc_text(got));
}

// After a <<<...>>> launch: the launch must not have failed.
bool launched(const std::string& name) { return ok_rc(name + " launch", cudaGetLastError()); }

std::string fmt(const char* f, ...) __attribute__((format(printf, 1, 2)));
std::string fmt(const char* f, ...) {
  char buf[512];
  va_list ap;
  va_start(ap, f);
  std::vsnprintf(buf, sizeof buf, f, ap);
  va_end(ap);
  return buf;
}

struct prng {
  uint64_t s;
  explicit prng(uint64_t seed) : s(seed * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull) {
    if (s == 0) s = 1;
  }
  uint64_t next() {  // xorshift64*
    s ^= s >> 12;
    s ^= s << 25;
    s ^= s >> 27;
    return s * 2685821657736338717ull;
  }
  uint32_t u32() { return static_cast<uint32_t>(next() >> 32); }
  // Non-zero, of either sign, not tiny.
  float nonzero_float() {
    const float v = static_cast<float>(u32() % 20000 + 1) / 64.0f;
    return (next() & 1) ? v : -v;
  }
  unsigned nonzero_u32() {
    const unsigned v = u32();
    return v ? v : 0x5a5a5a5au;
  }
};

// Device buffer that frees itself.
template <typename T>
struct dbuf {
  T* p = nullptr;
  size_t n = 0;
  explicit dbuf(size_t count, const std::string& name) : n(count) {
    if (!ok_rc(name + " cudaMalloc", cudaMalloc(reinterpret_cast<void**>(&p), count * sizeof(T)))) p = nullptr;
  }
  ~dbuf() {
    if (p) cudaFree(p);
  }
  dbuf(const dbuf&) = delete;
  dbuf& operator=(const dbuf&) = delete;
  size_t bytes() const { return n * sizeof(T); }
};

template <typename T>
bool upload(const std::string& name, dbuf<T>& d, const std::vector<T>& h) {
  return ok_rc(name + " H2D", cudaMemcpy(d.p, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice));
}

template <typename T>
bool download(const std::string& name, std::vector<T>& h, const dbuf<T>& d) {
  return ok_rc(name + " D2H", cudaMemcpy(h.data(), d.p, h.size() * sizeof(T), cudaMemcpyDeviceToHost));
}

// Exact comparison of two arrays; names the first difference.
template <typename T, typename Show>
bool check_array(const std::string& name, const std::vector<T>& got, const std::vector<T>& want, Show show) {
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < want.size(); ++i)
    if (!(got[i] == want[i])) {
      if (bad++ == 0) first = i;
    }
  if (bad == 0) return R.check(name, true, "");
  return R.check(name, false,
                 "element " + std::to_string(first) + " of " + std::to_string(want.size()) + " is " +
                     show(got[first]) + ", expected " + show(want[first]) + " (" + std::to_string(bad) +
                     " differ)");
}

std::string show_int(long long v) { return std::to_string(v); }
std::string show_float(double v) { return fmt("%.9g", v); }

void check_vgpu_loaded() {
  using info_fn = const char* (*)();
  void* sym = dlsym(RTLD_DEFAULT, "vgpuShimInfo");
  if (!sym) {
    R.fail("vgpu shim loaded", "vgpuShimInfo not found: this process runs on NVIDIA's runtime, not vgpu's");
    return;
  }
  const char* info = reinterpret_cast<info_fn>(sym)();
  R.pass(std::string("vgpu shim loaded (") + (info ? info : "no info") + ")");
}

// ============================================================================ launch records

using record_hdr = vgpu::host::launch_record_header;
static_assert(sizeof(record_hdr) == 64, "launch_record_header changed: update this test");
using record_fn = cudaError_t (*)(unsigned index, void* out, size_t cap, size_t* size);

record_fn g_record = nullptr;

bool find_record_hook(const std::string& who) {
  if (g_record) return true;
  g_record = reinterpret_cast<record_fn>(dlsym(RTLD_DEFAULT, "vgpuDebugLaunchRecord"));
  return R.check(who + " vgpuDebugLaunchRecord found", g_record != nullptr,
                 "dlsym(RTLD_DEFAULT, \"vgpuDebugLaunchRecord\") is null: not vgpu's shim, or the hook is not exported");
}

struct launch_rec {
  record_hdr h{};
  std::string name;
  std::vector<uint8_t> params;
};

// Reads record `index`; false with *err set when there is none or it is malformed.
bool read_record(unsigned index, launch_rec* r, std::string* err) {
  std::vector<uint8_t> buf(64 * 1024);
  size_t size = 0;
  const cudaError_t e = g_record(index, buf.data(), buf.size(), &size);
  if (e != cudaSuccess) {
    cudaGetLastError();
    *err = "vgpuDebugLaunchRecord(" + std::to_string(index) + ") returned " + rc_text(e);
    return false;
  }
  if (size < sizeof(record_hdr) || size > buf.size()) {
    *err = "record " + std::to_string(index) + " has size " + std::to_string(size);
    return false;
  }
  std::memcpy(&r->h, buf.data(), sizeof r->h);
  const size_t want = sizeof(record_hdr) + size_t{r->h.name_len} + r->h.param_len;
  if (size != want) {
    *err = fmt("record %u: size %zu, but header says %zu (name_len %u, param_len %u)", index, size, want,
               r->h.name_len, r->h.param_len);
    return false;
  }
  const char* name = reinterpret_cast<const char*>(buf.data() + sizeof(record_hdr));
  r->name.assign(name, r->h.name_len);
  while (!r->name.empty() && r->name.back() == '\0') r->name.pop_back();  // tolerate a terminator
  const uint8_t* p = buf.data() + sizeof(record_hdr) + r->h.name_len;
  r->params.assign(p, p + r->h.param_len);
  return true;
}

// The number of launches this process's session has recorded so far (the
// records are numbered from 0 without gaps): an exponential then binary search.
long count_records() {
  auto exists = [](unsigned i) {
    size_t size = 0;
    std::vector<uint8_t> buf(64 * 1024);
    const bool ok = g_record(i, buf.data(), buf.size(), &size) == cudaSuccess;
    cudaGetLastError();
    return ok;
  };
  if (!exists(0)) return 0;
  unsigned lo = 0, hi = 1;  // exists(lo), hi unknown
  while (exists(hi)) {
    lo = hi;
    if (hi > (1u << 30)) return -1;
    hi *= 2;
  }
  while (hi - lo > 1) {  // exists(lo), !exists(hi)
    const unsigned mid = lo + (hi - lo) / 2;
    if (exists(mid)) lo = mid;
    else hi = mid;
  }
  return static_cast<long>(hi);
}

// The parameter block the CUDA ABI gives a kernel: each parameter at the next
// multiple of its alignment, in declaration order. Struct padding is not
// meaningful (`care` is 0 there), nor are the gaps between parameters.
struct param_block {
  std::vector<uint8_t> bytes, care;
  size_t place(size_t size, size_t align) {
    const size_t off = (bytes.size() + align - 1) / align * align;
    bytes.resize(off + size, 0);
    care.resize(off + size, 0);
    return off;
  }
  template <typename T>
  param_block& add(const T& v) {
    const size_t off = place(sizeof(T), alignof(T));
    std::memcpy(&bytes[off], &v, sizeof(T));
    std::fill(care.begin() + off, care.begin() + off + sizeof(T), 1);
    return *this;
  }
  param_block& add_mixed(const Mixed& m) {
    const size_t off = place(sizeof(Mixed), alignof(Mixed));
    std::memcpy(&bytes[off], &m, sizeof(Mixed));
    auto mark = [&](size_t o, size_t n) { std::fill(care.begin() + off + o, care.begin() + off + o + n, 1); };
    mark(offsetof(Mixed, c), sizeof m.c);
    mark(offsetof(Mixed, d), sizeof m.d);
    mark(offsetof(Mixed, s), sizeof m.s);
    return *this;
  }
};

struct expected_launch {
  std::string label;
  std::string name;
  dim3 grid, block, cluster{0, 0, 0};
  uint32_t shared_mem = 0;
  uint32_t flags = 0;
  cudaStream_t stream = nullptr;
  param_block params;
};

std::string dim_text(const uint32_t* d) { return fmt("(%u,%u,%u)", d[0], d[1], d[2]); }
std::string dim_text(dim3 d) { return fmt("(%u,%u,%u)", d.x, d.y, d.z); }
bool same_dim(const uint32_t* a, dim3 b) { return a[0] == b.x && a[1] == b.y && a[2] == b.z; }

// Compares one record with what was launched; one check per aspect.
void check_record(const std::string& prefix, const launch_rec& r, const expected_launch& e) {
  const std::string n = prefix + e.label;
  R.check(n + " name", r.name == e.name, "recorded '" + r.name + "', expected '" + e.name + "'");
  R.check(n + " grid", same_dim(r.h.grid, e.grid), "recorded " + dim_text(r.h.grid) + ", expected " + dim_text(e.grid));
  R.check(n + " block", same_dim(r.h.block, e.block),
          "recorded " + dim_text(r.h.block) + ", expected " + dim_text(e.block));
  R.check(n + " cluster", same_dim(r.h.cluster, e.cluster),
          "recorded " + dim_text(r.h.cluster) + ", expected " + dim_text(e.cluster));
  R.check(n + " shared memory", r.h.shared_mem == e.shared_mem,
          fmt("recorded %u, expected %u", r.h.shared_mem, e.shared_mem));
  R.check(n + " launch flags", r.h.launch_flags == e.flags, fmt("recorded 0x%x, expected 0x%x", r.h.launch_flags, e.flags));
  const uint64_t want_stream = reinterpret_cast<uint64_t>(e.stream);
  R.check(n + " stream", r.h.stream == want_stream,
          fmt("recorded 0x%" PRIx64 ", expected 0x%" PRIx64, r.h.stream, want_stream));
  const std::vector<uint8_t>& want = e.params.bytes;
  if (!R.check(n + " parameter size", r.params.size() == want.size(),
               fmt("recorded %zu bytes, the CUDA ABI packs %zu", r.params.size(), want.size())))
    return;
  size_t bad = 0, first = 0;
  for (size_t i = 0; i < want.size(); ++i)
    if (e.params.care[i] && r.params[i] != want[i] && bad++ == 0) first = i;
  R.check(n + " parameter bytes", bad == 0,
          bad ? fmt("byte %zu of %zu is 0x%02x, expected 0x%02x (%zu bytes differ)", first, want.size(),
                    r.params[first], want[first], bad)
              : std::string());
}

// Checks records base.. against `exp` and that there are no more.
void check_records(const std::string& prefix, long base, const std::vector<expected_launch>& exp) {
  const long count = count_records();
  R.check(prefix + "record count", count == base + static_cast<long>(exp.size()),
          fmt("%ld records, expected %ld (%ld before + %zu launches)", count, base + static_cast<long>(exp.size()),
              base, exp.size()));
  for (size_t i = 0; i < exp.size(); ++i) {
    launch_rec r;
    std::string err;
    if (!R.check(prefix + exp[i].label + " record", read_record(static_cast<unsigned>(base + i), &r, &err), err))
      continue;
    check_record(prefix, r, exp[i]);
  }
}

// ============================================================================ marshal

void run_marshal() {
  if (!g_reference) {
    R.fail("marshal", "needs --reference (the launch records exist only with the reference executor)");
    return;
  }
  if (!find_record_hook("marshal")) return;
  prng rng(g_seed * 101 + 7);
  cudaStream_t s1 = nullptr, s2 = nullptr, s3 = nullptr;
  if (!ok_rc("marshal cudaStreamCreate 1", cudaStreamCreate(&s1)) ||
      !ok_rc("marshal cudaStreamCreate 2", cudaStreamCreateWithFlags(&s2, cudaStreamNonBlocking)) ||
      !ok_rc("marshal cudaStreamCreate 3", cudaStreamCreate(&s3)))
    return;
  dbuf<float> df(64, "marshal float");
  dbuf<int> di(64, "marshal int");
  dbuf<double> dd(64, "marshal double");
  dbuf<short> ds(64, "marshal short");
  if (!df.p || !di.p || !dd.p || !ds.p) return;
  ok_rc("marshal cudaDeviceSynchronize before", cudaDeviceSynchronize());
  const long base = count_records();
  if (!R.check("marshal records readable", base >= 0, "count failed")) return;

  std::vector<expected_launch> exp;
  auto add = [&](const std::string& label, const char* name, dim3 g, dim3 b, uint32_t shm, cudaStream_t s,
                 param_block p, dim3 cluster = dim3(0, 0, 0), uint32_t flags = 0) {
    expected_launch e;
    e.label = label;
    e.name = name;
    e.grid = g;
    e.block = b;
    e.cluster = cluster;
    e.shared_mem = shm;
    e.flags = flags;
    e.stream = s;
    e.params = std::move(p);
    exp.push_back(std::move(e));
  };

  // 1. (float*, int, struct {char; double; short[3]}) by value.
  Mixed m;
  std::memset(&m, 0xee, sizeof m);
  m.c = 'x';
  m.d = 3.25 + static_cast<double>(rng.u32() % 1000);
  m.s[0] = 1;
  m.s[1] = -2;
  m.s[2] = static_cast<short>(rng.u32());
  const int n1 = -123456 - static_cast<int>(rng.u32() % 1000);
  k_mixed<<<dim3(3, 2, 1), dim3(32, 4, 1), 0, s1>>>(df.p, n1, m);
  launched("marshal k_mixed<<<>>>");
  add("k_mixed<<<>>>", kMixedName, dim3(3, 2, 1), dim3(32, 4, 1), 0, s1,
      param_block().add(df.p).add(n1).add_mixed(m));

  // 2. A 4096-byte struct by value between a char and a double.
  Big big;
  for (int& w : big.w) w = static_cast<int>(rng.nonzero_u32());
  const char tag = 'q';
  const double tail = -1.0 / 3.0;
  k_big<<<1, 64, 256, s2>>>(tag, big, tail);
  launched("marshal k_big<<<>>>");
  add("k_big<<<>>> (4096-byte struct)", kBigName, dim3(1, 1, 1), dim3(64, 1, 1), 256, s2,
      param_block().add(tag).add(big).add(tail));

  // 3. No parameters, legacy default stream.
  k_none<<<7, 1>>>();
  launched("marshal k_none<<<>>>");
  add("k_none<<<>>>", kNoneName, dim3(7, 1, 1), dim3(1, 1, 1), 0, nullptr, param_block());

  // 4. Many scalars of different sizes; dynamic shared memory.
  const char a = 'A', h = 'z';
  const short b = -12345, j = 31000;
  const int c = 0x12345678;
  const long long d = 0x0123456789abcdefLL ^ static_cast<long long>(rng.next() & 0xffff);
  const float e = 1.5f;
  const double f = -2.75;
  void* g = dd.p;
  int* i = di.p + 5;
  const unsigned char k = 0xfe;
  const double l = 1e300;
  k_scalars<<<dim3(2, 3, 4), dim3(8, 8, 2), 1024, s1>>>(a, b, c, d, e, f, g, h, i, j, k, l);
  launched("marshal k_scalars<<<>>>");
  add("k_scalars<<<>>>", kScalarsName, dim3(2, 3, 4), dim3(8, 8, 2), 1024, s1,
      param_block().add(a).add(b).add(c).add(d).add(e).add(f).add(g).add(h).add(i).add(j).add(k).add(l));

  // 5, 6. Templated kernels.
  const double vd = 6.5;
  k_tmpl<double, 3><<<5, 128, 0, s3>>>(dd.p, vd);
  launched("marshal k_tmpl<double,3><<<>>>");
  add("k_tmpl<double,3><<<>>>", kTmplD3Name, dim3(5, 1, 1), dim3(128, 1, 1), 0, s3, param_block().add(dd.p).add(vd));
  const short vs = -7;
  k_tmpl<short, 7><<<1, 32, 48, s2>>>(ds.p, vs);
  launched("marshal k_tmpl<short,7><<<>>>");
  add("k_tmpl<short,7><<<>>>", kTmplS7Name, dim3(1, 1, 1), dim3(32, 1, 1), 48, s2, param_block().add(ds.p).add(vs));

  // 7. cudaLaunchKernel with an argument array.
  {
    float* p = df.p + 1;
    int n = 77;
    Mixed m2;
    std::memset(&m2, 0, sizeof m2);
    m2.c = -3;
    m2.d = -0.125;
    m2.s[0] = 300;
    m2.s[1] = 301;
    m2.s[2] = 302;
    void* args[] = {&p, &n, &m2};
    ok_rc("marshal cudaLaunchKernel",
          cudaLaunchKernel(reinterpret_cast<const void*>(&k_mixed), dim3(4, 1, 1), dim3(64, 1, 1), args, 512, s3));
    add("cudaLaunchKernel k_mixed", kMixedName, dim3(4, 1, 1), dim3(64, 1, 1), 512, s3,
        param_block().add(p).add(n).add_mixed(m2));
  }
  // 8. cudaLaunchKernelExC with a cluster dimension and programmatic stream serialization.
  {
    float* p = df.p + 2;
    int n = -1;
    Mixed m3;
    std::memset(&m3, 0, sizeof m3);
    m3.c = 1;
    m3.d = 1e-300;
    m3.s[2] = -1;
    void* args[] = {&p, &n, &m3};
    cudaLaunchAttribute attrs[2]{};
    attrs[0].id = cudaLaunchAttributeClusterDimension;
    attrs[0].val.clusterDim.x = 2;
    attrs[0].val.clusterDim.y = 1;
    attrs[0].val.clusterDim.z = 1;
    attrs[1].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attrs[1].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = dim3(8, 2, 1);
    cfg.blockDim = dim3(128, 1, 1);
    cfg.dynamicSmemBytes = 2048;
    cfg.stream = s2;
    cfg.attrs = attrs;
    cfg.numAttrs = 2;
    ok_rc("marshal cudaLaunchKernelExC", cudaLaunchKernelExC(&cfg, reinterpret_cast<const void*>(&k_mixed), args));
    add("cudaLaunchKernelExC k_mixed cluster(2,1,1)", kMixedName, dim3(8, 2, 1), dim3(128, 1, 1), 2048, s2,
        param_block().add(p).add(n).add_mixed(m3), dim3(2, 1, 1), 2u /* programmatic serialization */);
  }
  // 9. cudaLaunchKernelEx (the C++ template) with a cluster dimension.
  {
    cudaLaunchAttribute attr{};
    attr.id = cudaLaunchAttributeClusterDimension;
    attr.val.clusterDim.x = 4;
    attr.val.clusterDim.y = 1;
    attr.val.clusterDim.z = 1;
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = dim3(8, 1, 1);
    cfg.blockDim = dim3(32, 1, 1);
    cfg.dynamicSmemBytes = 0;
    cfg.stream = s3;
    cfg.attrs = &attr;
    cfg.numAttrs = 1;
    double* p = dd.p + 8;
    const double v = 1.5;
    ok_rc("marshal cudaLaunchKernelEx", cudaLaunchKernelEx(&cfg, k_tmpl<double, 3>, p, v));
    add("cudaLaunchKernelEx k_tmpl<double,3> cluster(4,1,1)", kTmplD3Name, dim3(8, 1, 1), dim3(32, 1, 1), 0, s3,
        param_block().add(p).add(v), dim3(4, 1, 1));
  }
  // 10. A cooperative launch.
  ok_rc("marshal cudaLaunchCooperativeKernel",
        cudaLaunchCooperativeKernel(reinterpret_cast<const void*>(&k_none), dim3(2, 1, 1), dim3(32, 1, 1), nullptr, 0,
                                    s2));
  add("cudaLaunchCooperativeKernel k_none", kNoneName, dim3(2, 1, 1), dim3(32, 1, 1), 0, s2, param_block(),
      dim3(0, 0, 0), 1u /* cooperative */);

  ok_rc("marshal cudaDeviceSynchronize", cudaDeviceSynchronize());
  check_records("marshal ", base, exp);
  for (cudaStream_t s : {s1, s2, s3}) cudaStreamDestroy(s);
}

// ============================================================================ compute

void compute_vadd_saxpy(prng& rng) {
  const int n = (1 << 20) + 333;
  std::vector<float> a(n), b(n), c(n), y(n), back(n);
  for (int i = 0; i < n; ++i) {
    a[i] = rng.nonzero_float();
    b[i] = rng.nonzero_float();
    y[i] = rng.nonzero_float();
  }
  dbuf<float> da(n, "vadd a"), db(n, "vadd b"), dc(n, "vadd c");
  if (!da.p || !db.p || !dc.p) return;
  upload("vadd a", da, a);
  upload("vadd b", db, b);
  ok_rc("vadd memset c", cudaMemset(dc.p, 0, dc.bytes()));
  k_vadd<<<(n + 255) / 256, 256>>>(da.p, db.p, dc.p, n);
  launched("vadd");
  for (int i = 0; i < n; ++i) c[i] = a[i] + b[i];
  download("vadd c", back, dc);
  check_array("compute vector add", back, c, show_float);

  // saxpy: y = a*x + y in place. The device may fuse the multiply-add; allow one
  // rounding of difference.
  const float alpha = rng.nonzero_float() / 16.0f;
  upload("saxpy y", dc, y);
  k_saxpy<<<(n + 127) / 128, 128>>>(n, alpha, da.p, dc.p);
  launched("saxpy");
  download("saxpy y", back, dc);
  size_t bad = 0, first = 0;
  for (int i = 0; i < n; ++i) {
    const double want = static_cast<double>(alpha) * a[i] + y[i];
    const double tol = 1e-6 * (std::fabs(static_cast<double>(alpha) * a[i]) + std::fabs(y[i])) + 1e-30;
    if (!(std::fabs(back[i] - want) <= tol) && bad++ == 0) first = static_cast<size_t>(i);
  }
  R.check("compute saxpy", bad == 0,
          fmt("element %zu is %.9g, expected %.9g (%zu differ)", first, back[first],
              static_cast<double>(alpha) * a[first] + y[first], bad));
}

void compute_reduce(prng& rng) {
  const int n = 3 * (1 << 20) + 17;
  std::vector<unsigned> in(n);
  unsigned long long want = 0;
  std::vector<unsigned> want_bins(64, 0);
  for (int i = 0; i < n; ++i) {
    in[i] = rng.nonzero_u32();
    want += in[i];
    ++want_bins[in[i] & 63];
  }
  dbuf<unsigned> din(n, "reduce in"), dbins(64, "reduce bins");
  dbuf<unsigned long long> dsum(1, "reduce sum");
  if (!din.p || !dbins.p || !dsum.p) return;
  upload("reduce in", din, in);
  ok_rc("reduce memset sum", cudaMemset(dsum.p, 0, dsum.bytes()));
  ok_rc("reduce memset bins", cudaMemset(dbins.p, 0, dbins.bytes()));
  k_reduce<<<120, kReduceBlock>>>(din.p, n, dsum.p, dbins.p);
  launched("reduce");
  std::vector<unsigned long long> sum(1, 0);
  std::vector<unsigned> bins(64, 0);
  download("reduce sum", sum, dsum);
  download("reduce bins", bins, dbins);
  R.check("compute reduction (shared memory + atomicAdd)", sum[0] == want,
          fmt("sum %llu, expected %llu", sum[0], want));
  check_array("compute histogram (atomicAdd)", bins, want_bins, [](unsigned v) { return std::to_string(v); });
}

void compute_struct(prng& rng) {
  const int n = 70000;
  Params p;
  std::memset(&p, 0, sizeof p);
  p.tag = static_cast<char>(rng.u32() % 100 + 1);
  p.mul = static_cast<double>(rng.u32() % 1000 + 1) * 0.25;  // exact products below 2^53
  p.scale = static_cast<int>(rng.u32() % 5000) + 1;
  p.bias[0] = static_cast<short>(rng.u32() % 3000 + 1);
  p.bias[1] = static_cast<short>(-static_cast<int>(rng.u32() % 3000) - 1);
  p.bias[2] = static_cast<short>(rng.u32() % 3000 + 7);
  p.off = static_cast<float>(rng.u32() % 400 + 1) * 0.5f;
  dbuf<OutRec> dout(n, "struct out");
  if (!dout.p) return;
  ok_rc("struct memset", cudaMemset(dout.p, 0, dout.bytes()));
  k_struct<<<(n + 255) / 256, 256>>>(p, dout.p, n);
  launched("struct by value");
  std::vector<OutRec> back(n);
  download("struct out", back, dout);
  size_t bad = 0, first = 0;
  for (int i = 0; i < n; ++i) {
    const long long a = static_cast<long long>(i) * p.scale + p.tag + p.bias[i % 3];
    const double b = p.mul * i + p.off;
    if ((back[i].a != a || back[i].b != b) && bad++ == 0) first = static_cast<size_t>(i);
  }
  R.check("compute struct by value, a field per thread", bad == 0,
          fmt("element %zu is {%lld, %.17g}, expected {%lld, %.17g} (%zu differ)", first, back[first].a, back[first].b,
              static_cast<long long>(first) * p.scale + p.tag + p.bias[first % 3], p.mul * first + p.off, bad));
}

void compute_grids(prng& rng) {
  const int w = 300, h = 211;
  std::vector<float> in(w * h), want(w * h), back(w * h);
  for (float& v : in) v = rng.nonzero_float();
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) want[x * h + y] = in[y * w + x];
  dbuf<float> din(in.size(), "transpose in"), dout(in.size(), "transpose out");
  if (!din.p || !dout.p) return;
  upload("transpose in", din, in);
  ok_rc("transpose memset", cudaMemset(dout.p, 0, dout.bytes()));
  k_transpose<<<dim3((w + 15) / 16, (h + 15) / 16), dim3(16, 16)>>>(din.p, dout.p, w, h);
  launched("transpose 2D grid");
  download("transpose out", back, dout);
  check_array("compute 2D grid (transpose 300x211)", back, want, show_float);

  const int X = 37, Y = 19, Z = 11;
  const int salt = static_cast<int>(rng.u32() & 0x7fffffff) | 1;
  std::vector<int> w3(X * Y * Z), b3(X * Y * Z);
  for (int z = 0; z < Z; ++z)
    for (int y = 0; y < Y; ++y)
      for (int x = 0; x < X; ++x) w3[(z * Y + y) * X + x] = (x * 131 + y * 31 + z * 7) ^ salt;
  dbuf<int> d3(w3.size(), "3d out");
  if (!d3.p) return;
  ok_rc("3d memset", cudaMemset(d3.p, 0, d3.bytes()));
  k_3d<<<dim3((X + 7) / 8, (Y + 3) / 4, (Z + 1) / 2), dim3(8, 4, 2)>>>(d3.p, X, Y, Z, salt);
  launched("3D grid");
  download("3d out", b3, d3);
  check_array("compute 3D grid and block", b3, w3, show_int);
}

void compute_dynamic_shared(prng& rng) {
  const int block = 192, blocks = 500, n = block * blocks;
  std::vector<int> in(n), want(n), back(n);
  for (int& v : in) v = static_cast<int>(rng.nonzero_u32());
  for (int bidx = 0; bidx < blocks; ++bidx)
    for (int t = 0; t < block; ++t) want[bidx * block + t] = in[bidx * block + block - 1 - t];
  dbuf<int> din(n, "dyn in"), dout(n, "dyn out");
  if (!din.p || !dout.p) return;
  upload("dyn in", din, in);
  k_dyn_reverse<<<blocks, block, block * sizeof(int)>>>(din.p, dout.p);
  launched("dynamic shared memory");
  download("dyn out", back, dout);
  check_array("compute dynamic shared memory sized at launch (768 B)", back, want, show_int);

  // 64 KiB of dynamic shared memory: over the 48 KiB default, allowed by cudaFuncSetAttribute.
  const int per = 16, tb = 1024, chunk = per * tb, nb = 40, n2 = chunk * nb;
  const size_t shm = static_cast<size_t>(chunk) * sizeof(int);
  std::vector<int> in2(n2), want2(n2), back2(n2);
  for (int& v : in2) v = static_cast<int>(rng.nonzero_u32());
  for (int bidx = 0; bidx < nb; ++bidx)
    for (int j = 0; j < chunk; ++j) want2[bidx * chunk + j] = in2[bidx * chunk + chunk - 1 - j];
  dbuf<int> din2(n2, "dyn64k in"), dout2(n2, "dyn64k out");
  if (!din2.p || !dout2.p) return;
  upload("dyn64k in", din2, in2);
  if (!ok_rc("compute cudaFuncSetAttribute MaxDynamicSharedMemorySize 64 KiB",
             cudaFuncSetAttribute(reinterpret_cast<const void*>(&k_dyn_big),
                                  cudaFuncAttributeMaxDynamicSharedMemorySize, static_cast<int>(shm))))
    return;
  k_dyn_big<<<nb, tb, shm>>>(din2.p, dout2.p, per);
  launched("dynamic shared memory 64 KiB");
  download("dyn64k out", back2, dout2);
  check_array("compute dynamic shared memory 64 KiB (after cudaFuncSetAttribute)", back2, want2, show_int);
}

void compute_symbols(prng& rng) {
  std::vector<int> table(256);
  for (int& v : table) v = static_cast<int>(rng.u32() % 100000) + 1;
  const float factor = static_cast<float>(rng.u32() % 1000 + 1);
  ok_rc("symbols cudaMemcpyToSymbol g_table", cudaMemcpyToSymbol(g_table, table.data(), table.size() * sizeof(int)));
  // A piece at an offset.
  std::vector<int> patch(16);
  for (int& v : patch) v = -static_cast<int>(rng.u32() % 100000) - 1;
  ok_rc("symbols cudaMemcpyToSymbol g_table offset 256",
        cudaMemcpyToSymbol(g_table, patch.data(), patch.size() * sizeof(int), 64 * sizeof(int)));
  std::copy(patch.begin(), patch.end(), table.begin() + 64);
  ok_rc("symbols cudaMemcpyToSymbol g_factor", cudaMemcpyToSymbol(g_factor, &factor, sizeof factor));
  k_globals<<<1, 256>>>();
  launched("globals");
  std::vector<int> want(256), res(256, 0);
  for (int i = 0; i < 256; ++i) want[i] = table[i] * 3 + static_cast<int>(factor);
  ok_rc("symbols cudaMemcpyFromSymbol g_result", cudaMemcpyFromSymbol(res.data(), g_result, res.size() * sizeof(int)));
  check_array("compute __device__ globals (cudaMemcpyToSymbol / FromSymbol)", res, want, show_int);

  std::vector<int> part(32, 0);
  ok_rc("symbols cudaMemcpyFromSymbol g_result offset",
        cudaMemcpyFromSymbol(part.data(), g_result, part.size() * sizeof(int), 100 * sizeof(int)));
  check_array("compute cudaMemcpyFromSymbol at an offset", part,
              std::vector<int>(want.begin() + 100, want.begin() + 132), show_int);

  void* addr = nullptr;
  if (ok_rc("symbols cudaGetSymbolAddress g_result", cudaGetSymbolAddress(&addr, g_result))) {
    std::vector<int> via(256, 0);
    ok_rc("symbols cudaMemcpy from the symbol's address",
          cudaMemcpy(via.data(), addr, via.size() * sizeof(int), cudaMemcpyDeviceToHost));
    check_array("compute cudaGetSymbolAddress points at the symbol", via, want, show_int);
  }
  size_t sz = 0;
  if (ok_rc("symbols cudaGetSymbolSize g_result", cudaGetSymbolSize(&sz, g_result)))
    R.check("compute cudaGetSymbolSize g_result", sz == 256 * sizeof(int), fmt("%zu, expected 1024", sz));
  sz = 0;
  if (ok_rc("symbols cudaGetSymbolSize g_factor", cudaGetSymbolSize(&sz, g_factor)))
    R.check("compute cudaGetSymbolSize g_factor", sz == sizeof(float), fmt("%zu, expected 4", sz));

  // __constant__ memory.
  std::vector<int> lut(64);
  for (int& v : lut) v = static_cast<int>(rng.nonzero_u32() >> 1);
  ok_rc("symbols cudaMemcpyToSymbol c_lut", cudaMemcpyToSymbol(c_lut, lut.data(), lut.size() * sizeof(int)));
  const int n = 50000;
  std::vector<unsigned> in(n);
  std::vector<int> wl(n), bl(n, 0);
  for (int i = 0; i < n; ++i) {
    in[i] = rng.nonzero_u32();
    wl[i] = lut[in[i] & 63] ^ static_cast<int>(in[i]);
  }
  dbuf<unsigned> din(n, "lut in");
  dbuf<int> dout(n, "lut out");
  if (!din.p || !dout.p) return;
  upload("lut in", din, in);
  k_lut<<<(n + 255) / 256, 256>>>(din.p, dout.p, n);
  launched("constant lut");
  download("lut out", bl, dout);
  check_array("compute __constant__ memory", bl, wl, show_int);
  std::vector<int> lut_back(64, 0);
  ok_rc("symbols cudaMemcpyFromSymbol c_lut", cudaMemcpyFromSymbol(lut_back.data(), c_lut, lut_back.size() * sizeof(int)));
  check_array("compute __constant__ read back", lut_back, lut, show_int);
}

void run_compute() {
  if (g_reference) {
    R.fail("compute", "needs a GPU: with --reference kernels are recorded, not run");
    return;
  }
  prng rng(g_seed * 31 + 3);
  compute_vadd_saxpy(rng);
  compute_reduce(rng);
  compute_struct(rng);
  compute_grids(rng);
  compute_dynamic_shared(rng);
  compute_symbols(rng);
  ok_rc("compute cudaDeviceSynchronize", cudaDeviceSynchronize());
}

// ============================================================================ dlopen

std::string self_dir() {
  char buf[4096];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return ".";
  std::string p(buf, static_cast<size_t>(n));
  const size_t slash = p.rfind('/');
  return slash == std::string::npos ? "." : p.substr(0, slash);
}

bool file_exists(const std::string& p) { return access(p.c_str(), R_OK) == 0; }

void run_dlopen() {
  // $VGPU_KERNELS_DL, else beside the program, else ../lib (the build tree).
  std::vector<std::string> where;
  if (const char* env = std::getenv("VGPU_KERNELS_DL")) where.push_back(env);
  where.push_back(self_dir() + "/libvgpu_kernels_dl.so");
  where.push_back(self_dir() + "/../lib/libvgpu_kernels_dl.so");
  std::string path;
  for (const std::string& w : where)
    if (file_exists(w)) {
      path = w;
      break;
    }
  if (!R.check("dlopen library found", !path.empty(), "libvgpu_kernels_dl.so not in " + where.back() + " nor beside the program"))
    return;
  // Some runtime work first, so that the library's registration comes late.
  void* warm = nullptr;
  ok_rc("dlopen warm-up cudaMalloc", cudaMalloc(&warm, 256));
  cudaFree(warm);

  const long base = g_reference && find_record_hook("dlopen") ? count_records() : -1;
  void* lib = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (!R.check("dlopen " + path, lib != nullptr, dlerror() ? dlerror() : "dlopen failed")) return;
  auto launch = reinterpret_cast<vgpu_dl_launch_fn>(dlsym(lib, "vgpu_dl_launch"));
  auto kernel = reinterpret_cast<vgpu_dl_kernel_fn>(dlsym(lib, "vgpu_dl_kernel"));
  if (!R.check("dlopen symbols", launch && kernel, "vgpu_dl_launch or vgpu_dl_kernel missing")) {
    dlclose(lib);
    return;
  }
  const int n = 5000;
  const int seed1 = static_cast<int>(g_seed * 1000 + 11), seed2 = seed1 + 5;
  cudaStream_t s = nullptr;
  ok_rc("dlopen cudaStreamCreate", cudaStreamCreate(&s));
  {
    dbuf<int> d1(n, "dlopen out1"), d2(n, "dlopen out2");
    if (d1.p && d2.p) {
      ok_rc("dlopen memset", cudaMemset(d1.p, 0, d1.bytes()));
      ok_rc("dlopen memset 2", cudaMemset(d2.p, 0, d2.bytes()));
      // The library launches its own kernel with <<<>>>.
      ok_rc("dlopen library's launch (<<<>>> inside the library)", launch(d1.p, n, seed1, s));
      // The executable launches the library's kernel with cudaLaunchKernel.
      int* p = d2.p;
      int nn = n, sd = seed2;
      void* args[] = {&p, &nn, &sd};
      ok_rc("dlopen cudaLaunchKernel of the library's kernel",
            cudaLaunchKernel(kernel(), dim3((n + kDlBlock - 1) / kDlBlock), dim3(kDlBlock), args, 0, s));
      ok_rc("dlopen cudaStreamSynchronize", cudaStreamSynchronize(s));
      if (g_reference) {
        std::vector<expected_launch> exp(2);
        exp[0].label = "dl_fill via vgpu_dl_launch";
        exp[0].params.add(d1.p).add(n).add(seed1);
        exp[1].label = "dl_fill via cudaLaunchKernel";
        exp[1].params.add(d2.p).add(n).add(seed2);
        for (expected_launch& e : exp) {
          e.name = kDlFillMangled;
          e.grid = dim3((n + kDlBlock - 1) / kDlBlock, 1, 1);
          e.block = dim3(kDlBlock, 1, 1);
          e.stream = s;
        }
        if (base >= 0) check_records("dlopen ", base, exp);
      } else {
        std::vector<int> want(n), back(n, 0);
        for (int i = 0; i < n; ++i) want[i] = i * 7 + seed1;
        download("dlopen out1", back, d1);
        check_array("dlopen library kernel result (library's launch)", back, want, show_int);
        for (int i = 0; i < n; ++i) want[i] = i * 7 + seed2;
        download("dlopen out2", back, d2);
        check_array("dlopen library kernel result (cudaLaunchKernel)", back, want, show_int);
      }
    }
  }
  ok_rc("dlopen cudaStreamDestroy", cudaStreamDestroy(s));
  R.check("dlclose", dlclose(lib) == 0, dlerror() ? dlerror() : "dlclose failed");
  // The runtime still works after the library's module went away.
  dbuf<int> d(64, "dlopen after dlclose");
  if (d.p) {
    k_set<<<1, 64>>>(d.p, 64, 99);
    launched("dlopen own kernel after dlclose");
    ok_rc("dlopen cudaDeviceSynchronize after dlclose", cudaDeviceSynchronize());
    if (!g_reference) {
      std::vector<int> back(64, 0);
      download("dlopen after dlclose", back, d);
      check_array("dlopen own kernel after dlclose", back, std::vector<int>(64, 99), show_int);
    }
  }
}

// ============================================================================ threads

constexpr int kThreads = 4, kLaunchesPerThread = 200;

void run_threads() {
  const long base = g_reference && find_record_hook("threads") ? count_records() : -1;
  if (g_reference && base < 0) return;
  std::atomic<int> failed_calls{0};
  std::vector<std::string> verdicts(kThreads);
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([t, &failed_calls, &verdicts] {
      std::string& out = verdicts[t];
      auto call = [&](const char* what, cudaError_t e) {
        if (e != cudaSuccess) {
          if (failed_calls++ < 10) out += std::string(what) + " returned " + rc_text(e) + "; ";
          return false;
        }
        return true;
      };
      prng rng(g_seed * 1000 + static_cast<uint64_t>(t));
      const int n = 1000 + 24 * t;
      cudaStream_t s[2] = {nullptr, nullptr};
      int* d[2] = {nullptr, nullptr};
      std::vector<int> init[2], want[2], back[2];
      for (int j = 0; j < 2; ++j) {
        call("cudaStreamCreate", cudaStreamCreateWithFlags(&s[j], cudaStreamNonBlocking));
        call("cudaMalloc", cudaMalloc(reinterpret_cast<void**>(&d[j]), n * sizeof(int)));
        init[j].resize(n);
        for (int& v : init[j]) v = static_cast<int>(rng.u32() % 1000000) + 1;
        want[j] = init[j];
        back[j].assign(n, 0);
        call("cudaMemcpyAsync H2D",
             cudaMemcpyAsync(d[j], init[j].data(), n * sizeof(int), cudaMemcpyHostToDevice, s[j]));
        call("cudaStreamSynchronize", cudaStreamSynchronize(s[j]));  // pageable source: finish before reuse
      }
      for (int k = 0; k < kLaunchesPerThread; ++k) {
        const int j = k % 2;
        const int v = (t + 1) * 1000 + k;
        k_add<<<(n + 127) / 128, 128, 0, s[j]>>>(d[j], n, v);
        call("k_add<<<>>>", cudaGetLastError());
        for (int& x : want[j]) x += v;
      }
      for (int j = 0; j < 2; ++j) {
        call("cudaMemcpyAsync D2H", cudaMemcpyAsync(back[j].data(), d[j], n * sizeof(int), cudaMemcpyDeviceToHost, s[j]));
        call("cudaStreamSynchronize", cudaStreamSynchronize(s[j]));
      }
      if (!g_reference)
        for (int j = 0; j < 2; ++j)
          if (back[j] != want[j]) {
            size_t i = 0;
            while (back[j][i] == want[j][i]) ++i;
            out += fmt("stream %d: element %zu is %d, expected %d; ", j, i, back[j][i], want[j][i]);
          }
      for (int j = 0; j < 2; ++j) {
        call("cudaFree", cudaFree(d[j]));
        call("cudaStreamDestroy", cudaStreamDestroy(s[j]));
      }
    });
  }
  for (std::thread& th : ts) th.join();
  for (int t = 0; t < kThreads; ++t)
    R.check(fmt("threads thread %d: %d launches on 2 streams%s", t, kLaunchesPerThread,
                g_reference ? "" : ", results"),
            verdicts[t].empty(), verdicts[t]);
  R.check("threads no call failed", failed_calls == 0, std::to_string(failed_calls.load()) + " calls failed");
  if (g_reference) {
    ok_rc("threads cudaDeviceSynchronize", cudaDeviceSynchronize());
    const long count = count_records();
    R.check("threads record count", count == base + kThreads * kLaunchesPerThread,
            fmt("%ld records, expected %ld + %d", count, base, kThreads * kLaunchesPerThread));
    // Spot check: the last record is one of ours.
    launch_rec r;
    std::string err;
    if (count > 0 && read_record(static_cast<unsigned>(count - 1), &r, &err))
      R.check("threads last record is k_add", r.name == kAddName, "recorded '" + r.name + "'");
  }
}

// ============================================================================ hostfunc

struct cb_entry {
  int stream, id;
  int observed;
  bool status_ok;
};
struct cb_log {
  std::mutex mu;
  std::vector<cb_entry> v;
};
struct cb_arg {
  cb_log* log;
  int stream, id;
  const volatile int* slot;  // pinned host memory a preceding D2H copy filled
};

void host_fn(void* p) {
  auto* a = static_cast<cb_arg*>(p);
  const int observed = *a->slot;
  std::lock_guard<std::mutex> lock(a->log->mu);
  a->log->v.push_back({a->stream, a->id, observed, true});
}

void CUDART_CB stream_cb(cudaStream_t, cudaError_t status, void* p) {
  auto* a = static_cast<cb_arg*>(p);
  const int observed = *a->slot;
  std::lock_guard<std::mutex> lock(a->log->mu);
  a->log->v.push_back({a->stream, a->id, observed, status == cudaSuccess});
}

void run_hostfunc() {
  constexpr int kSteps = 24, kN = 64;
  prng rng(g_seed * 77 + 5);
  // What the callbacks touch lives on the heap: if a runtime let a callback run
  // after cudaStreamSynchronize returned (a bug this test reports), it must not
  // write into a dead stack frame.
  auto* log = new cb_log;
  auto* args = new std::vector<cb_arg>(2 * kSteps);
  cudaStream_t s[2] = {nullptr, nullptr};
  int* pinned[2] = {nullptr, nullptr};
  dbuf<int> d0(kN, "hostfunc buffer 0"), d1(kN, "hostfunc buffer 1");
  int* d[2] = {d0.p, d1.p};
  if (!d0.p || !d1.p) return;
  for (int j = 0; j < 2; ++j) {
    if (!ok_rc("hostfunc cudaStreamCreate", cudaStreamCreate(&s[j]))) return;
    if (!ok_rc("hostfunc cudaMallocHost", cudaMallocHost(reinterpret_cast<void**>(&pinned[j]), kSteps * sizeof(int))))
      return;
    std::memset(pinned[j], 0, kSteps * sizeof(int));
  }
  std::vector<int> expect(2 * kSteps);
  int enqueue_failures = 0;
  std::string first_failure;
  auto call = [&](const std::string& what, cudaError_t e) {
    if (e != cudaSuccess && enqueue_failures++ == 0) first_failure = what + " returned " + rc_text(e);
  };
  for (int k = 0; k < kSteps; ++k) {
    for (int j = 0; j < 2; ++j) {
      // The work before the callback leaves a known value in d[j]: a kernel (only
      // checked on a GPU) or a memset (the reference executor runs memsets too).
      const bool by_kernel = !g_reference && k % 3 == 0;
      int value;
      if (by_kernel) {
        value = static_cast<int>(rng.u32() % 1000000) + 1;
        k_set<<<1, kN, 0, s[j]>>>(d[j], kN, value);
        call("k_set<<<>>>", cudaGetLastError());
      } else {
        const uint8_t b = static_cast<uint8_t>(rng.u32() % 255 + 1);
        value = static_cast<int>(0x01010101u * b);
        call("cudaMemsetAsync", cudaMemsetAsync(d[j], b, kN * sizeof(int), s[j]));
      }
      k_none<<<1, 1, 0, s[j]>>>();  // an unrelated kernel in between
      call("k_none<<<>>>", cudaGetLastError());
      call("cudaMemcpyAsync D2H",
           cudaMemcpyAsync(&pinned[j][k], d[j] + (k % kN), sizeof(int), cudaMemcpyDeviceToHost, s[j]));
      cb_arg& a = (*args)[j * kSteps + k];
      a = {log, j, k, &pinned[j][k]};
      expect[j * kSteps + k] = value;
      if (k % 2 == 0) call("cudaLaunchHostFunc", cudaLaunchHostFunc(s[j], host_fn, &a));
      else call("cudaStreamAddCallback", cudaStreamAddCallback(s[j], stream_cb, &a, 0));
    }
  }
  R.check("hostfunc enqueue", enqueue_failures == 0, std::to_string(enqueue_failures) + " calls failed, first: " + first_failure);
  ok_rc("hostfunc cudaStreamSynchronize 0", cudaStreamSynchronize(s[0]));
  ok_rc("hostfunc cudaStreamSynchronize 1", cudaStreamSynchronize(s[1]));
  size_t at_sync = 0;
  {
    std::lock_guard<std::mutex> lock(log->mu);
    at_sync = log->v.size();
  }
  // Stragglers (a bug, reported below): wait a while for them, so that the
  // report can say whether they ran late or never.
  std::vector<cb_entry> got;
  const auto t0 = std::chrono::steady_clock::now();
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(log->mu);
      got = log->v;
    }
    if (got.size() >= 2 * kSteps || std::chrono::steady_clock::now() - t0 > std::chrono::seconds(10)) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  const double late_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  R.check("hostfunc every callback ran before cudaStreamSynchronize returned", at_sync == 2 * kSteps,
          fmt("%zu of %d callbacks had run when both streams' cudaStreamSynchronize returned; %zu ran within %.0f ms "
              "after",
              at_sync, 2 * kSteps, got.size() - at_sync, late_ms));
  for (int j = 0; j < 2; ++j) {
    std::string order, values;
    int pos = 0;
    bool status_ok = true;
    for (const cb_entry& e : got) {
      if (e.stream != j) continue;
      if (e.id != pos && order.empty()) order = fmt("callback #%d of stream %d was id %d", pos, j, e.id);
      if (e.id >= 0 && e.id < kSteps && e.observed != expect[j * kSteps + e.id] && values.empty())
        values = fmt("callback %d of stream %d saw 0x%08x in pinned memory, expected 0x%08x (the copy before it had "
                     "not landed)",
                     e.id, j, static_cast<unsigned>(e.observed), static_cast<unsigned>(expect[j * kSteps + e.id]));
      status_ok = status_ok && e.status_ok;
      ++pos;
    }
    R.check(fmt("hostfunc stream %d callbacks in enqueue order", j), order.empty() && pos == kSteps,
            order.empty() ? fmt("%d of %d callbacks ran", pos, kSteps) : order);
    R.check(fmt("hostfunc stream %d callbacks ran after the work before them", j), values.empty(), values);
    R.check(fmt("hostfunc stream %d cudaStreamAddCallback status cudaSuccess", j), status_ok, "a callback got an error status");
  }
  for (int j = 0; j < 2; ++j) cudaStreamDestroy(s[j]);
  if (got.size() == 2 * kSteps) {  // else leaked on purpose: a callback may still come
    for (int j = 0; j < 2; ++j) cudaFreeHost(pinned[j]);
    delete args;
    delete log;
  }
}

// ============================================================================ deferred

// Valid work on `s` after an error: a launch, a copy back, a sync; all succeed.
void normal_work_after(const std::string& when, cudaStream_t s) {
  dbuf<int> d(256, "deferred after " + when);
  if (!d.p) return;
  const int v = static_cast<int>(g_seed % 1000) + 4242;
  k_set<<<2, 128, 0, s>>>(d.p, 256, v);
  launched("deferred normal launch after " + when);
  std::vector<int> back(256, 0);
  ok_rc("deferred normal copy after " + when,
        cudaMemcpyAsync(back.data(), d.p, d.bytes(), cudaMemcpyDeviceToHost, s));
  ok_rc("deferred normal sync after " + when, cudaStreamSynchronize(s));
  if (!g_reference) check_array("deferred normal result after " + when, back, std::vector<int>(256, v), show_int);
}

// What CUDA says to a launch asking for more shared memory than a block can
// have: an invalid argument (cuLaunchKernel's CUDA_ERROR_INVALID_VALUE), or out
// of resources. Any other error (an unknown kernel, say) is a different failure.
bool too_much_shared_error(cudaError_t e) {
  return e == cudaErrorInvalidValue || e == cudaErrorLaunchOutOfResources;
}

void run_deferred() {
  cudaStream_t s = nullptr;
  if (!ok_rc("deferred cudaStreamCreate", cudaStreamCreate(&s))) return;
  dbuf<int> d(16, "deferred");
  if (!d.p) return;
  cudaGetLastError();
  constexpr size_t kTooMuchShared = 1 << 20;  // 1 MiB of dynamic shared memory: more than any GPU has

  // cudaLaunchKernel + cudaStreamSynchronize: the error comes from one of them,
  // cudaGetLastError returns it (once), a second sync is clean.
  {
    int* p = d.p;
    void* args[] = {&p};
    const cudaError_t e_launch =
        cudaLaunchKernel(reinterpret_cast<const void*>(&k_dyn_touch), dim3(1), dim3(32), args, kTooMuchShared, s);
    const cudaError_t e_sync = cudaStreamSynchronize(s);
    const cudaError_t e_last = cudaGetLastError();
    const cudaError_t err = e_launch != cudaSuccess ? e_launch : e_sync;
    const std::string seen = "launch " + rc_text(e_launch) + ", sync " + rc_text(e_sync) + ", last error " + rc_text(e_last);
    R.check("deferred 1 MiB shared memory (cudaLaunchKernel): the launch or the next cudaStreamSynchronize fails",
            too_much_shared_error(err), seen);
    R.check("deferred cudaGetLastError returns that error", err != cudaSuccess && e_last == err, seen);
    ok_rc("deferred cudaGetLastError is clean afterwards", cudaGetLastError());
    ok_rc("deferred second cudaStreamSynchronize is clean", cudaStreamSynchronize(s));
    normal_work_after("a failed cudaLaunchKernel", s);
  }
  // <<<>>> on the legacy default stream + cudaDeviceSynchronize.
  {
    k_dyn_touch<<<1, 32, kTooMuchShared>>>(d.p);
    const cudaError_t e_peek = cudaPeekAtLastError();
    const cudaError_t e_sync = cudaDeviceSynchronize();
    const cudaError_t e_last = cudaGetLastError();
    const cudaError_t err = e_peek != cudaSuccess ? e_peek : e_sync;
    const std::string seen = "after launch " + rc_text(e_peek) + ", cudaDeviceSynchronize " + rc_text(e_sync) +
                             ", last error " + rc_text(e_last);
    R.check("deferred 1 MiB shared memory (<<<>>>): the launch or the next cudaDeviceSynchronize fails",
            too_much_shared_error(err), seen);
    R.check("deferred cudaGetLastError returns that error (<<<>>>)", err != cudaSuccess && e_last == err, seen);
    ok_rc("deferred cudaDeviceSynchronize is clean afterwards", cudaDeviceSynchronize());
    normal_work_after("a failed <<<>>>", nullptr);
    normal_work_after("a failed <<<>>> (other stream)", s);
  }
  // Configuration errors the runtime catches before anything is queued. The
  // codes are what NVIDIA's CUDA 13 runtime returned on the H100.
  {
    k_none<<<1, 2048, 0, s>>>();
    const cudaError_t e = cudaGetLastError();
    R.check("deferred block of 2048 threads: cudaErrorInvalidValue at once (<<<>>>)",
            e == cudaErrorInvalidValue, "cudaGetLastError right after the launch returned " + rc_text(e));
    ok_rc("deferred sync after the refused launch", cudaStreamSynchronize(s));

    const cudaError_t e2 = cudaLaunchKernel(reinterpret_cast<const void*>(&k_none), dim3(1, 70000, 1), dim3(32, 1, 1),
                                            nullptr, 0, s);
    const cudaError_t l2 = cudaGetLastError();
    R.check("deferred grid.y 70000: cudaLaunchKernel returns cudaErrorInvalidValue",
            e2 == cudaErrorInvalidValue && l2 == e2,
            "returned " + rc_text(e2) + ", cudaGetLastError " + rc_text(l2));
    const cudaError_t e3 = cudaLaunchKernel(reinterpret_cast<const void*>(&k_none), dim3(1), dim3(1, 1, 65), nullptr, 0, s);
    const cudaError_t l3 = cudaGetLastError();
    R.check("deferred block.z 65: cudaLaunchKernel returns cudaErrorInvalidValue",
            e3 == cudaErrorInvalidValue && l3 == e3,
            "returned " + rc_text(e3) + ", cudaGetLastError " + rc_text(l3));
    ok_rc("deferred sync after the refused launches", cudaStreamSynchronize(s));
    normal_work_after("refused configurations", s);
  }
  cudaStreamDestroy(s);
}

// ============================================================================ flood

void run_flood(long count, size_t mib) {
  void* hold = nullptr;
  if (mib > 0) {
    if (!ok_rc("flood cudaMalloc", cudaMalloc(&hold, mib << 20))) return;
    ok_rc("flood cudaMemset", cudaMemset(hold, 0x3c, mib << 20));
  }
  cudaStream_t s[2] = {nullptr, nullptr};
  for (cudaStream_t& x : s)
    if (!ok_rc("flood cudaStreamCreate", cudaStreamCreateWithFlags(&x, cudaStreamNonBlocking))) return;
  Big big;
  for (int i = 0; i < 1024; ++i) big.w[i] = i + 1;
  long failures = 0;
  for (long k = 0; k < count; ++k) {
    if (k % 4 == 3) k_big<<<1, 32, 0, s[k & 1]>>>('f', big, 0.25);  // a 4 KiB parameter block
    else k_spin<<<1, 1, 0, s[k & 1]>>>(100000);                      // ~50 us on a GPU
    if (cudaGetLastError() != cudaSuccess) ++failures;
    if (k == 1000) {
      if (failures > 0) break;  // reported below; no QUEUED for launches that failed
      std::printf("QUEUED %ld launches\n", k);
      std::fflush(stdout);
    }
  }
  R.check("flood launches", failures == 0, std::to_string(failures) + " launches failed");
  ok_rc("flood cudaDeviceSynchronize", cudaDeviceSynchronize());
  if (hold) cudaFree(hold);
}

int usage() {
  std::fprintf(stderr,
               "usage: vgpu-kernel-test [--expect-vgpu] [--reference] [--seed N] [--count N] [--mib N] <subcommand>\n"
               "  subcommands: marshal (--reference only) | compute (GPU only) | dlopen | threads | hostfunc |\n"
               "               deferred | all | flood\n"
               "  --reference   the mediator runs the CPU reference executor: kernels are recorded, not run\n"
               "  --expect-vgpu fail unless vgpu's shim is the loaded CUDA runtime\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  std::string cmd;
  long count = 200000;
  size_t mib = 64;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--expect-vgpu") g_expect_vgpu = true;
    else if (a == "--reference") g_reference = true;
    else if (a == "--seed" && i + 1 < argc) g_seed = std::strtoull(argv[++i], nullptr, 0);
    else if (a == "--count" && i + 1 < argc) count = std::strtol(argv[++i], nullptr, 0);
    else if (a == "--mib" && i + 1 < argc) mib = std::strtoull(argv[++i], nullptr, 0);
    else if (a == "--help" || a == "-h") return usage(), 0;
    else if (a.rfind("--", 0) == 0 || !cmd.empty()) return usage();
    else cmd = a;
  }
  if (cmd.empty()) return usage();
  if (g_expect_vgpu) check_vgpu_loaded();

  if (cmd == "marshal") run_marshal();
  else if (cmd == "compute") run_compute();
  else if (cmd == "dlopen") run_dlopen();
  else if (cmd == "threads") run_threads();
  else if (cmd == "hostfunc") run_hostfunc();
  else if (cmd == "deferred") run_deferred();
  else if (cmd == "flood") run_flood(count, mib);
  else if (cmd == "all") {
    if (g_reference) run_marshal();
    else run_compute();
    run_dlopen();
    run_threads();
    run_hostfunc();
    run_deferred();
  } else {
    return usage();
  }

  std::printf("SUMMARY %s%s: %d passed, %d failed\n", cmd.c_str(), g_reference ? " (reference)" : "",
              R.passed.load(), R.failed.load());
  if (R.failed == 0 && R.passed == 0) {
    std::printf("FAIL %s: no check passed\n", cmd.c_str());
    return 1;
  }
  return R.failed == 0 ? 0 : 1;
}
