// vgpu-guest-test: an ordinary CUDA program, the "unchanged guest process".
//
// It uses only the public CUDA runtime API and links NVIDIA's libcudart.so.13
// without an RPATH, so it runs natively on a GPU, or through vgpu when
// LD_LIBRARY_PATH points at vgpu's shim. Standard CUDA semantics only: the GPU
// check script runs it both ways and both must pass.
//
//   vgpu-guest-test [--expect-vgpu] [--seed N] [--seconds N] <subcommand>
//     integrity  random data of many sizes through every copy kind, memsets, offsets, pinned buffers
//     async      4 created streams + the default, legacy and per-thread streams, events
//     device     device count/selection/properties/attributes, versions, memory info, last error
//     errors     every refused call returns the right error; ordinary work goes on afterwards
//     threads    4 host threads at once; the last error is per thread
//     misuse     copy kinds that contradict the pointers: an error, never a crash
//     runtime    stream priority/flags/id/device, limits, pitched copies, PCI ids, peers, flags
//     all        all of the above
//     soak       integrity at small sizes for --seconds N (keeps a guest busy beside another)
//   helpers for the integration tests (session lifetime and isolation):
//     meminfo    prints `MEMINFO free=<bytes> total=<bytes>`
//     hold       --mib N: allocates, prints `PTR <p>` and `HOLDING`, exits without freeing
//                (with --release-file F: first waits for F, then checks the memory is unchanged)
//     foreign    --ptr P: every use of another process's pointer must be refused
//
// Prints one line per check, `PASS <name>`, `FAIL <name>: <detail>` or
// `SKIP <name>: <why>`, then a summary; exits 1 when any check failed or none
// passed. --expect-vgpu fails unless vgpu's shim (symbol vgpuShimInfo) is loaded.
#include <cuda_profiler_api.h>
#include <cuda_runtime_api.h>
#include <dlfcn.h>

#include <atomic>
#include <chrono>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <sys/stat.h>

namespace {

// --- reporting -----------------------------------------------------------------

struct reporter {
  std::atomic<int> passed{0}, failed{0}, skipped{0};
  bool quiet = false;  // soak: print failures only
  std::string prefix;  // prepended to every check name (set while single-threaded)

  void pass(const std::string& name) {
    ++passed;
    if (!quiet) std::printf("PASS %s%s\n", prefix.c_str(), name.c_str());
  }
  void fail(const std::string& name, const std::string& detail) {
    ++failed;
    std::printf("FAIL %s%s: %s\n", prefix.c_str(), name.c_str(), detail.c_str());
    std::fflush(stdout);
  }
  void skip(const std::string& name, const std::string& why) {
    ++skipped;
    std::printf("SKIP %s%s: %s\n", prefix.c_str(), name.c_str(), why.c_str());
  }
  bool check(const std::string& name, bool ok, const std::string& detail) {
    if (ok) pass(name); else fail(name, detail);
    return ok;
  }
};

reporter R;
bool g_expect_vgpu = false;

const char* err_name(cudaError_t e) {
  const char* n = cudaGetErrorName(e);
  return n ? n : "(null name)";
}

std::string describe(cudaError_t got, cudaError_t want) {
  return std::string("returned ") + err_name(got) + " (" + std::to_string(static_cast<int>(got)) +
         "), expected " + err_name(want);
}

// Checks a CUDA return value. When an error was expected, also checks that it is
// the thread's last error and clears it, so that checks do not leak into each other.
bool expect_rc(const std::string& name, cudaError_t got, cudaError_t want) {
  bool ok = got == want;
  std::string detail = describe(got, want);
  if (want != cudaSuccess) {
    const cudaError_t last = cudaGetLastError();
    if (ok && last != want) {
      ok = false;
      detail = std::string("returned the right error but cudaGetLastError said ") + err_name(last);
    }
  }
  return R.check(name, ok, detail);
}

bool ok_rc(const std::string& name, cudaError_t got) { return expect_rc(name, got, cudaSuccess); }

// --- data ----------------------------------------------------------------------

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
  // Random bytes, never zero: a buffer that a copy forgot to fill reads as zeros.
  void fill(uint8_t* p, size_t n) {
    size_t i = 0;
    while (i < n) {
      uint64_t x = next();
      for (int k = 0; k < 8 && i < n; ++k, ++i, x >>= 8) {
        const uint8_t b = static_cast<uint8_t>(x);
        p[i] = b ? b : 0x5a;
      }
    }
  }
};

// Empty when equal; otherwise where the first difference is.
std::string compare(const uint8_t* got, const uint8_t* want, size_t n) {
  if (n == 0 || std::memcmp(got, want, n) == 0) return {};
  for (size_t i = 0; i < n; ++i) {
    if (got[i] != want[i]) {
      char buf[160];
      size_t bad = 0;
      for (size_t j = i; j < n; ++j) bad += got[j] != want[j];
      std::snprintf(buf, sizeof buf, "first difference at byte %zu of %zu: got 0x%02x want 0x%02x (%zu bytes differ)",
                    i, n, got[i], want[i], bad);
      return buf;
    }
  }
  return {};
}

std::string compare_value(const uint8_t* got, uint8_t value, size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (got[i] != value) {
      char buf[128];
      std::snprintf(buf, sizeof buf, "byte %zu of %zu is 0x%02x, expected 0x%02x", i, n, got[i], value);
      return buf;
    }
  }
  return {};
}

bool check_bytes(const std::string& name, const uint8_t* got, const uint8_t* want, size_t n) {
  const std::string d = compare(got, want, n);
  return R.check(name, d.empty(), d);
}

bool check_value(const std::string& name, const uint8_t* got, uint8_t value, size_t n) {
  const std::string d = compare_value(got, value, n);
  return R.check(name, d.empty(), d);
}

uint8_t* dev_at(void* base, size_t off) { return static_cast<uint8_t*>(base) + off; }

constexpr size_t MiB = 1024 * 1024;

// --- integrity -------------------------------------------------------------------

// Pageable host memory and device memory of `n` bytes: every copy kind, memsets, and
// copies at offsets inside the allocations.
void integrity_size(size_t n, uint64_t seed) {
  const std::string sz = "[" + std::to_string(n) + "]";
  prng rng(seed ^ (n * 1315423911ull));
  std::vector<uint8_t> src(n), back(n);
  rng.fill(src.data(), n);

  void* d1 = nullptr;
  void* d2 = nullptr;
  if (!ok_rc("integrity cudaMalloc" + sz, cudaMalloc(&d1, n))) return;
  if (!ok_rc("integrity cudaMalloc second" + sz, cudaMalloc(&d2, n))) {
    cudaFree(d1);
    return;
  }
  if (n > 0) R.check("integrity distinct allocations" + sz, d1 != d2 && d1 && d2, "same or null pointers");

  // H2D, D2D, D2H.
  ok_rc("integrity H2D" + sz, cudaMemcpy(d1, src.data(), n, cudaMemcpyHostToDevice));
  ok_rc("integrity D2D" + sz, cudaMemcpy(d2, d1, n, cudaMemcpyDeviceToDevice));
  std::fill(back.begin(), back.end(), 0);
  ok_rc("integrity D2H" + sz, cudaMemcpy(back.data(), d2, n, cudaMemcpyDeviceToHost));
  check_bytes("integrity H2D+D2D+D2H data" + sz, back.data(), src.data(), n);
  std::fill(back.begin(), back.end(), 0);
  ok_rc("integrity D2H first" + sz, cudaMemcpy(back.data(), d1, n, cudaMemcpyDeviceToHost));
  check_bytes("integrity H2D+D2H data" + sz, back.data(), src.data(), n);

  // Memset, then every byte read back. The value is an int; only its low byte counts.
  const uint8_t v = static_cast<uint8_t>(1 + (seed + n) % 254);
  ok_rc("integrity cudaMemset" + sz, cudaMemset(d2, 0x300 | v, n));
  std::fill(back.begin(), back.end(), 0);
  ok_rc("integrity D2H after memset" + sz, cudaMemcpy(back.data(), d2, n, cudaMemcpyDeviceToHost));
  check_value("integrity memset data" + sz, back.data(), v, n);

  // cudaMemcpyDefault in each direction (the runtime infers the kind from the pointers).
  rng.fill(src.data(), n);
  ok_rc("integrity Default H2D" + sz, cudaMemcpy(d1, src.data(), n, cudaMemcpyDefault));
  ok_rc("integrity Default D2D" + sz, cudaMemcpy(d2, d1, n, cudaMemcpyDefault));
  std::fill(back.begin(), back.end(), 0);
  ok_rc("integrity Default D2H" + sz, cudaMemcpy(back.data(), d2, n, cudaMemcpyDefault));
  check_bytes("integrity Default data" + sz, back.data(), src.data(), n);
  std::fill(back.begin(), back.end(), 0);
  ok_rc("integrity Default H2H" + sz, cudaMemcpy(back.data(), src.data(), n, cudaMemcpyDefault));
  check_bytes("integrity Default H2H data" + sz, back.data(), src.data(), n);
  std::fill(back.begin(), back.end(), 0);
  ok_rc("integrity H2H" + sz, cudaMemcpy(back.data(), src.data(), n, cudaMemcpyHostToHost));
  check_bytes("integrity H2H data" + sz, back.data(), src.data(), n);

  // Copies at offsets inside the allocations. d1 holds src, d2 holds src too.
  if (n >= 4096) {
    const size_t off = 1 + n / 3;          // odd, unaligned
    const size_t len = n / 3 + 5;          // odd length, ends inside
    const size_t off2 = 3;
    std::vector<uint8_t> patch(len);
    prng prng2(seed + 77);
    prng2.fill(patch.data(), len);
    ok_rc("integrity H2D at offset" + sz, cudaMemcpy(dev_at(d1, off), patch.data(), len, cudaMemcpyHostToDevice));
    std::fill(back.begin(), back.end(), 0);
    ok_rc("integrity D2H whole after offset write" + sz, cudaMemcpy(back.data(), d1, n, cudaMemcpyDeviceToHost));
    // src with the patch in place, built in src itself (src is not needed afterwards).
    std::memcpy(src.data() + off, patch.data(), len);
    check_bytes("integrity offset write left the rest alone" + sz, back.data(), src.data(), n);
    src.clear();
    src.shrink_to_fit();

    std::vector<uint8_t> part(len, 0);
    ok_rc("integrity D2H from offset" + sz, cudaMemcpy(part.data(), dev_at(d1, off), len, cudaMemcpyDeviceToHost));
    check_bytes("integrity D2H from offset data" + sz, part.data(), patch.data(), len);

    // D2D between offsets, over a memset background.
    const uint8_t bg = static_cast<uint8_t>(v ^ 0xff ? v ^ 0xff : 0x11);
    ok_rc("integrity memset background" + sz, cudaMemset(d2, bg, n));
    ok_rc("integrity D2D at offsets" + sz, cudaMemcpy(dev_at(d2, off2), dev_at(d1, off), len, cudaMemcpyDeviceToDevice));
    std::vector<uint8_t> want2(n, bg);
    std::memcpy(want2.data() + off2, patch.data(), len);
    // Memset inside the allocation at an odd offset.
    const size_t moff = n - 7, mlen = 5;
    std::memset(want2.data() + moff, 0x7e, mlen);
    ok_rc("integrity memset at offset" + sz, cudaMemset(dev_at(d2, moff), 0x7e, mlen));
    std::fill(back.begin(), back.end(), 0);
    ok_rc("integrity D2H after offset D2D" + sz, cudaMemcpy(back.data(), d2, n, cudaMemcpyDeviceToHost));
    check_bytes("integrity offset D2D and memset data" + sz, back.data(), want2.data(), n);

    // The very last byte of an allocation is reachable, alone.
    uint8_t last = 0;
    ok_rc("integrity D2H last byte" + sz, cudaMemcpy(&last, dev_at(d2, n - 1), 1, cudaMemcpyDeviceToHost));
    R.check("integrity last byte value" + sz, last == want2[n - 1], "wrong last byte");
  }

  ok_rc("integrity cudaFree" + sz, cudaFree(d1));
  ok_rc("integrity cudaFree second" + sz, cudaFree(d2));
}

// Pinned host buffers (cudaMallocHost, cudaHostAlloc) as copy sources and targets.
void integrity_pinned(size_t n, uint64_t seed) {
  const std::string sz = "[" + std::to_string(n) + "]";
  void* h1 = nullptr;
  void* h2 = nullptr;
  void* d = nullptr;
  if (!ok_rc("pinned cudaMallocHost" + sz, cudaMallocHost(&h1, n))) return;
  if (!ok_rc("pinned cudaHostAlloc" + sz, cudaHostAlloc(&h2, n, cudaHostAllocDefault))) {
    cudaFreeHost(h1);
    return;
  }
  if (!ok_rc("pinned cudaMalloc" + sz, cudaMalloc(&d, n))) {
    cudaFreeHost(h1);
    cudaFreeHost(h2);
    return;
  }
  auto* p1 = static_cast<uint8_t*>(h1);
  auto* p2 = static_cast<uint8_t*>(h2);
  prng rng(seed ^ (n * 2654435761ull) ^ 0xabcdef);
  rng.fill(p1, n);
  std::memset(p2, 0, n);
  ok_rc("pinned H2D from cudaMallocHost" + sz, cudaMemcpy(d, h1, n, cudaMemcpyHostToDevice));
  ok_rc("pinned D2H into cudaHostAlloc" + sz, cudaMemcpy(h2, d, n, cudaMemcpyDeviceToHost));
  check_bytes("pinned round trip data" + sz, p2, p1, n);

  rng.fill(p2, n);
  ok_rc("pinned Default H2D from cudaHostAlloc" + sz, cudaMemcpy(d, h2, n, cudaMemcpyDefault));
  std::memset(p1, 0, n);
  ok_rc("pinned Default D2H into cudaMallocHost" + sz, cudaMemcpy(h1, d, n, cudaMemcpyDefault));
  check_bytes("pinned Default round trip data" + sz, p1, p2, n);

  // Host to host between pinned and pageable memory.
  std::vector<uint8_t> pageable(n, 0);
  ok_rc("pinned H2H pinned->pageable" + sz, cudaMemcpy(pageable.data(), h1, n, cudaMemcpyHostToHost));
  check_bytes("pinned H2H data" + sz, pageable.data(), p2, n);

  if (n >= 16) {
    // Offsets inside both the pinned buffer and the allocation.
    std::memset(p1, 0, n);
    ok_rc("pinned memset" + sz, cudaMemset(d, 0x42, n));
    ok_rc("pinned H2D at offsets" + sz, cudaMemcpy(dev_at(d, 3), p2 + 5, n - 8, cudaMemcpyHostToDevice));
    ok_rc("pinned D2H at offsets" + sz, cudaMemcpy(p1 + 1, dev_at(d, 0), n - 1, cudaMemcpyDeviceToHost));
    std::vector<uint8_t> want(n, 0);
    std::memset(want.data() + 1, 0x42, n - 1);
    std::memcpy(want.data() + 1 + 3, p2 + 5, n - 8);
    check_bytes("pinned offsets data" + sz, p1, want.data(), n);
  }

  ok_rc("pinned cudaFree" + sz, cudaFree(d));
  ok_rc("pinned cudaFreeHost (MallocHost)" + sz, cudaFreeHost(h1));
  ok_rc("pinned cudaFreeHost (HostAlloc)" + sz, cudaFreeHost(h2));
}

void run_integrity(uint64_t seed, bool small_only) {
  static const size_t kSizes[] = {0, 1, 4095, 4096, MiB + 3, 64 * MiB};
  static const size_t kSmall[] = {0, 1, 4095, 4096, 65537};
  if (small_only) {
    for (size_t n : kSmall) integrity_size(n, seed);
    for (size_t n : {size_t{1}, size_t{4099}}) integrity_pinned(n, seed);
    return;
  }
  for (size_t n : kSizes) integrity_size(n, seed);
  for (size_t n : {size_t{1}, size_t{4095}, size_t{4096}, MiB + 3, 8 * MiB}) integrity_pinned(n, seed);
}

// --- async -------------------------------------------------------------------------

struct pipeline {
  std::string name;
  cudaStream_t stream = nullptr;
  bool pinned = false;
  size_t n = 0, extra = 0;
  uint8_t value = 0;
  uint8_t* src = nullptr;  // n bytes
  uint8_t* dst = nullptr;  // n + extra bytes
  std::vector<uint8_t> src_pageable, dst_pageable;
  void* dA = nullptr;
  void* dB = nullptr;
  cudaEvent_t start = nullptr, end = nullptr;
  bool ready = false;
};

// Allocates and enqueues: record start; H2D into dA; memset dB; D2D dA -> dB;
// D2H of dB (memset tail included); record end. Stream order alone makes the result right.
void enqueue(pipeline& p, uint64_t seed) {
  const std::string& nm = p.name;
  if (p.pinned) {
    void* a = nullptr;
    void* b = nullptr;
    if (!ok_rc("async cudaMallocHost src " + nm, cudaMallocHost(&a, p.n))) return;
    if (!ok_rc("async cudaMallocHost dst " + nm, cudaMallocHost(&b, p.n + p.extra))) return;
    p.src = static_cast<uint8_t*>(a);
    p.dst = static_cast<uint8_t*>(b);
  } else {
    p.src_pageable.resize(p.n);
    p.dst_pageable.resize(p.n + p.extra);
    p.src = p.src_pageable.data();
    p.dst = p.dst_pageable.data();
  }
  prng(seed).fill(p.src, p.n);
  std::memset(p.dst, 0, p.n + p.extra);
  if (!ok_rc("async cudaMalloc A " + nm, cudaMalloc(&p.dA, p.n))) return;
  if (!ok_rc("async cudaMalloc B " + nm, cudaMalloc(&p.dB, p.n + p.extra))) return;
  if (!ok_rc("async cudaEventCreate start " + nm, cudaEventCreate(&p.start))) return;
  if (!ok_rc("async cudaEventCreateWithFlags end " + nm, cudaEventCreateWithFlags(&p.end, cudaEventDefault))) return;
  ok_rc("async cudaEventRecord start " + nm, cudaEventRecord(p.start, p.stream));
  ok_rc("async cudaMemcpyAsync H2D " + nm, cudaMemcpyAsync(p.dA, p.src, p.n, cudaMemcpyHostToDevice, p.stream));
  ok_rc("async cudaMemsetAsync " + nm, cudaMemsetAsync(p.dB, p.value, p.n + p.extra, p.stream));
  ok_rc("async cudaMemcpyAsync D2D " + nm, cudaMemcpyAsync(p.dB, p.dA, p.n, cudaMemcpyDeviceToDevice, p.stream));
  ok_rc("async cudaMemcpyAsync D2H " + nm, cudaMemcpyAsync(p.dst, p.dB, p.n + p.extra, cudaMemcpyDeviceToHost, p.stream));
  ok_rc("async cudaEventRecord end " + nm, cudaEventRecord(p.end, p.stream));
  p.ready = true;
}

void finish(pipeline& p, bool sync_stream) {
  const std::string& nm = p.name;
  if (!p.ready) return;
  // Before anything waited, a query may say either.
  const cudaError_t q = cudaEventQuery(p.end);
  R.check("async cudaEventQuery before sync " + nm, q == cudaSuccess || q == cudaErrorNotReady,
          describe(q, cudaErrorNotReady));
  if (q == cudaErrorNotReady) cudaGetLastError();
  const cudaError_t sq = cudaStreamQuery(p.stream);
  R.check("async cudaStreamQuery before sync " + nm, sq == cudaSuccess || sq == cudaErrorNotReady,
          describe(sq, cudaErrorNotReady));
  if (sq == cudaErrorNotReady) cudaGetLastError();

  ok_rc("async cudaEventSynchronize " + nm, cudaEventSynchronize(p.end));
  ok_rc("async cudaEventQuery after sync " + nm, cudaEventQuery(p.end));
  ok_rc("async cudaEventQuery start after sync " + nm, cudaEventQuery(p.start));
  float ms = -1.0f;
  if (ok_rc("async cudaEventElapsedTime " + nm, cudaEventElapsedTime(&ms, p.start, p.end)))
    R.check("async elapsed time >= 0 " + nm, ms >= 0.0f, "elapsed " + std::to_string(ms) + " ms");
  if (sync_stream) ok_rc("async cudaStreamSynchronize " + nm, cudaStreamSynchronize(p.stream));
  ok_rc("async cudaStreamQuery after sync " + nm, cudaStreamQuery(p.stream));

  check_bytes("async copied data " + nm, p.dst, p.src, p.n);
  check_value("async memset tail " + nm, p.dst + p.n, p.value, p.extra);
}

void release(pipeline& p) {
  const std::string& nm = p.name;
  if (p.start) ok_rc("async cudaEventDestroy start " + nm, cudaEventDestroy(p.start));
  if (p.end) ok_rc("async cudaEventDestroy end " + nm, cudaEventDestroy(p.end));
  if (p.dA) ok_rc("async cudaFree A " + nm, cudaFree(p.dA));
  if (p.dB) ok_rc("async cudaFree B " + nm, cudaFree(p.dB));
  if (p.pinned) {
    if (p.src) ok_rc("async cudaFreeHost src " + nm, cudaFreeHost(p.src));
    if (p.dst) ok_rc("async cudaFreeHost dst " + nm, cudaFreeHost(p.dst));
  }
}

void run_async(uint64_t seed) {
  constexpr int kStreams = 4;
  cudaStream_t s[kStreams] = {};
  bool created[kStreams] = {};
  created[0] = ok_rc("async cudaStreamCreate", cudaStreamCreate(&s[0]));
  created[1] = ok_rc("async cudaStreamCreateWithFlags(NonBlocking)",
                     cudaStreamCreateWithFlags(&s[1], cudaStreamNonBlocking));
  created[2] = ok_rc("async cudaStreamCreateWithPriority(NonBlocking, 0)",
                     cudaStreamCreateWithPriority(&s[2], cudaStreamNonBlocking, 0));
  created[3] = ok_rc("async cudaStreamCreateWithPriority(Default, -1)",
                     cudaStreamCreateWithPriority(&s[3], cudaStreamDefault, -1));
  for (int i = 0; i < kStreams; ++i)
    if (created[i])
      R.check("async stream handle " + std::to_string(i), s[i] != nullptr && s[i] != cudaStreamLegacy &&
                                                              s[i] != cudaStreamPerThread,
              "created stream has a reserved handle value");

  // Created streams, all in flight at once.
  std::vector<pipeline> ps;
  static const size_t kN[kStreams] = {4096 * 3 + 1, 65537, 3 * MiB + 1, 123};
  for (int i = 0; i < kStreams; ++i) {
    if (!created[i]) continue;
    pipeline p;
    p.name = "stream" + std::to_string(i);
    p.stream = s[i];
    p.pinned = i % 2 == 0;
    p.n = kN[i];
    p.extra = 100 + static_cast<size_t>(i);
    p.value = static_cast<uint8_t>(0x31 + i);
    ps.push_back(std::move(p));
  }
  for (size_t i = 0; i < ps.size(); ++i) enqueue(ps[i], seed * 100 + i);
  for (pipeline& p : ps) finish(p, true);
  ok_rc("async cudaDeviceSynchronize", cudaDeviceSynchronize());
  for (pipeline& p : ps) release(p);

  // The default stream, the legacy stream and the per-thread stream as arguments.
  struct named { const char* name; cudaStream_t s; } specials[] = {
      {"default(0)", nullptr}, {"cudaStreamLegacy", cudaStreamLegacy}, {"cudaStreamPerThread", cudaStreamPerThread}};
  std::vector<pipeline> qs;
  for (const named& sp : specials) {
    pipeline p;
    p.name = sp.name;
    p.stream = sp.s;
    p.pinned = qs.size() != 1;
    p.n = 70000 + qs.size() * 13;
    p.extra = 64;
    p.value = static_cast<uint8_t>(0x61 + qs.size());
    qs.push_back(std::move(p));
  }
  for (size_t i = 0; i < qs.size(); ++i) {
    enqueue(qs[i], seed * 100 + 50 + i);
    finish(qs[i], true);
  }
  // And once more without per-stream syncs: cudaDeviceSynchronize must cover them all.
  std::vector<pipeline> rs;
  for (const named& sp : specials) {
    pipeline p;
    p.name = std::string(sp.name) + "/devsync";
    p.stream = sp.s;
    p.pinned = true;
    p.n = 5000 + rs.size();
    p.extra = 8;
    p.value = static_cast<uint8_t>(0x71 + rs.size());
    rs.push_back(std::move(p));
  }
  for (size_t i = 0; i < rs.size(); ++i) enqueue(rs[i], seed * 100 + 80 + i);
  ok_rc("async cudaDeviceSynchronize covers all streams", cudaDeviceSynchronize());
  for (pipeline& p : rs) {
    if (!p.ready) continue;
    ok_rc("async cudaEventQuery after device sync " + p.name, cudaEventQuery(p.end));
    check_bytes("async data after device sync " + p.name, p.dst, p.src, p.n);
    check_value("async memset tail after device sync " + p.name, p.dst + p.n, p.value, p.extra);
  }
  for (pipeline& p : qs) release(p);
  for (pipeline& p : rs) release(p);

  for (int i = 0; i < kStreams; ++i)
    if (created[i]) ok_rc("async cudaStreamDestroy " + std::to_string(i), cudaStreamDestroy(s[i]));
  ok_rc("async final cudaDeviceSynchronize", cudaDeviceSynchronize());
}

// --- device --------------------------------------------------------------------------

void run_device() {
  int count = 0;
  if (ok_rc("device cudaGetDeviceCount", cudaGetDeviceCount(&count)))
    R.check("device count >= 1", count >= 1, "count " + std::to_string(count));
  ok_rc("device cudaSetDevice(0)", cudaSetDevice(0));
  int dev = -1;
  if (ok_rc("device cudaGetDevice", cudaGetDevice(&dev)))
    R.check("device current is 0", dev == 0, "current device " + std::to_string(dev));
  if (count >= 1) {
    expect_rc("device cudaSetDevice(count) invalid", cudaSetDevice(count), cudaErrorInvalidDevice);
    dev = -1;
    ok_rc("device cudaGetDevice after failed set", cudaGetDevice(&dev));
    R.check("device unchanged after failed set", dev == 0, "current device " + std::to_string(dev));
  }

  cudaDeviceProp prop;
  std::memset(&prop, 0, sizeof prop);
  if (ok_rc("device cudaGetDeviceProperties", cudaGetDeviceProperties(&prop, 0))) {
    R.check("device name non-empty", prop.name[0] != '\0', "empty name");
    R.check("device totalGlobalMem > 0", prop.totalGlobalMem > 0, "zero");
    R.check("device warpSize 32", prop.warpSize == 32, "warpSize " + std::to_string(prop.warpSize));
    R.check("device multiProcessorCount > 0", prop.multiProcessorCount > 0,
            std::to_string(prop.multiProcessorCount));
    std::printf("     device 0: %s, cc %d.%d, %d SMs, %zu bytes\n", prop.name, prop.major, prop.minor,
                prop.multiProcessorCount, static_cast<size_t>(prop.totalGlobalMem));
  }
  int v = 0;
  if (ok_rc("device cudaDeviceGetAttribute(WarpSize)", cudaDeviceGetAttribute(&v, cudaDevAttrWarpSize, 0)))
    R.check("device attribute warp size 32", v == 32, std::to_string(v));
  struct { cudaDeviceAttr a; const char* n; int want; } attrs[] = {
      {cudaDevAttrMultiProcessorCount, "MultiProcessorCount", prop.multiProcessorCount},
      {cudaDevAttrComputeCapabilityMajor, "ComputeCapabilityMajor", prop.major},
      {cudaDevAttrComputeCapabilityMinor, "ComputeCapabilityMinor", prop.minor},
  };
  for (const auto& at : attrs) {
    v = -12345;
    if (ok_rc(std::string("device cudaDeviceGetAttribute(") + at.n + ")", cudaDeviceGetAttribute(&v, at.a, 0)))
      R.check(std::string("device attribute ") + at.n + " agrees with properties", v == at.want,
              "attribute " + std::to_string(v) + ", properties " + std::to_string(at.want));
  }
  if (count >= 1)
    expect_rc("device cudaGetDeviceProperties(count) invalid", cudaGetDeviceProperties(&prop, count),
              cudaErrorInvalidDevice);

  int drv = 0, rt = 0;
  if (ok_rc("device cudaDriverGetVersion", cudaDriverGetVersion(&drv)))
    R.check("device driver version >= 13000", drv >= 13000, std::to_string(drv));
  if (ok_rc("device cudaRuntimeGetVersion", cudaRuntimeGetVersion(&rt)))
    R.check("device runtime version >= 13000", rt >= 13000, std::to_string(rt));

  size_t free_before = 0, total = 0;
  if (ok_rc("device cudaMemGetInfo", cudaMemGetInfo(&free_before, &total))) {
    R.check("device 0 < free <= total", free_before > 0 && free_before <= total,
            "free " + std::to_string(free_before) + " total " + std::to_string(total));
    void* p = nullptr;
    if (ok_rc("device cudaMalloc 64 MiB", cudaMalloc(&p, 64 * MiB))) {
      size_t free_after = 0, total_after = 0;
      if (ok_rc("device cudaMemGetInfo after malloc", cudaMemGetInfo(&free_after, &total_after))) {
        R.check("device free memory dropped after malloc", free_after < free_before,
                "free before " + std::to_string(free_before) + ", after " + std::to_string(free_after));
        R.check("device total unchanged", total_after == total, "total changed");
      }
      ok_rc("device cudaFree 64 MiB", cudaFree(p));
    }
  }

  const char* name = cudaGetErrorName(cudaErrorInvalidValue);
  R.check("device cudaGetErrorName", name && std::strcmp(name, "cudaErrorInvalidValue") == 0,
          std::string("got ") + (name ? name : "(null)"));
  const char* str = cudaGetErrorString(cudaErrorInvalidValue);
  R.check("device cudaGetErrorString", str && str[0] != '\0', "null or empty");
  const char* ok_name = cudaGetErrorName(cudaSuccess);
  R.check("device cudaGetErrorName(cudaSuccess)", ok_name && std::strcmp(ok_name, "cudaSuccess") == 0,
          std::string("got ") + (ok_name ? ok_name : "(null)"));

  // The last error: Peek leaves it, Get returns it once and resets it.
  cudaGetLastError();
  R.check("device no last error at start", cudaPeekAtLastError() == cudaSuccess, "an error was pending");
  const cudaError_t e = cudaSetDevice(count);
  R.check("device failing call fails", e == cudaErrorInvalidDevice, describe(e, cudaErrorInvalidDevice));
  cudaError_t p1 = cudaPeekAtLastError(), p2 = cudaPeekAtLastError();
  R.check("device cudaPeekAtLastError returns the error", p1 == cudaErrorInvalidDevice, describe(p1, cudaErrorInvalidDevice));
  R.check("device cudaPeekAtLastError does not reset", p2 == cudaErrorInvalidDevice, describe(p2, cudaErrorInvalidDevice));
  const cudaError_t g1 = cudaGetLastError();
  const cudaError_t g2 = cudaGetLastError();
  R.check("device cudaGetLastError returns the error", g1 == cudaErrorInvalidDevice, describe(g1, cudaErrorInvalidDevice));
  R.check("device cudaGetLastError resets it", g2 == cudaSuccess, describe(g2, cudaSuccess));
  const cudaError_t p3 = cudaPeekAtLastError();
  R.check("device cudaPeekAtLastError after reset", p3 == cudaSuccess, describe(p3, cudaSuccess));
  // A successful call does not clear a pending error.
  cudaSetDevice(count);
  ok_rc("device successful call with an error pending", cudaSetDevice(0));
  const cudaError_t g3 = cudaGetLastError();
  R.check("device success does not clear the last error", g3 == cudaErrorInvalidDevice, describe(g3, cudaErrorInvalidDevice));
}

// --- errors ----------------------------------------------------------------------------

void run_errors() {
  cudaGetLastError();
  expect_rc("errors cudaFree of a pointer never allocated", cudaFree(reinterpret_cast<void*>(0x1234500)),
            cudaErrorInvalidValue);
  ok_rc("errors cudaFree(nullptr)", cudaFree(nullptr));

  void* d = nullptr;
  void* d2 = nullptr;
  const bool have = ok_rc("errors cudaMalloc 4096", cudaMalloc(&d, 4096));
  const bool have2 = ok_rc("errors cudaMalloc 4096 second", cudaMalloc(&d2, 4096));
  std::vector<uint8_t> h(8192, 0x33);
  if (have && have2) {
    expect_rc("errors H2D past the end", cudaMemcpy(d, h.data(), 4097, cudaMemcpyHostToDevice), cudaErrorInvalidValue);
    expect_rc("errors D2H past the end", cudaMemcpy(h.data(), d, 4097, cudaMemcpyDeviceToHost), cudaErrorInvalidValue);
    expect_rc("errors D2D past the end of the source", cudaMemcpy(d2, d, 4097, cudaMemcpyDeviceToDevice),
              cudaErrorInvalidValue);
    expect_rc("errors H2D at an offset past the end", cudaMemcpy(dev_at(d, 4000), h.data(), 97, cudaMemcpyHostToDevice),
              cudaErrorInvalidValue);
    expect_rc("errors cudaMemset past the end", cudaMemset(d, 1, 4097), cudaErrorInvalidValue);
    expect_rc("errors cudaMemset at an offset past the end", cudaMemset(dev_at(d, 4095), 1, 2), cudaErrorInvalidValue);
    expect_rc("errors invalid memcpy kind", cudaMemcpy(d, h.data(), 16, static_cast<cudaMemcpyKind>(42)),
              cudaErrorInvalidMemcpyDirection);
    // The allocation is unharmed by the refused calls.
    std::vector<uint8_t> src(4096), back(4096, 0);
    prng(99).fill(src.data(), src.size());
    ok_rc("errors H2D exactly 4096", cudaMemcpy(d, src.data(), 4096, cudaMemcpyHostToDevice));
    ok_rc("errors D2H exactly 4096", cudaMemcpy(back.data(), d, 4096, cudaMemcpyDeviceToHost));
    check_bytes("errors allocation intact after refused copies", back.data(), src.data(), 4096);
  }

  // A pointer inside an allocation is not an allocation.
  if (have) {
    expect_rc("errors cudaFree of a pointer inside an allocation", cudaFree(dev_at(d, 16)), cudaErrorInvalidValue);
    std::vector<uint8_t> back(4096, 0);
    ok_rc("errors allocation usable after bad free", cudaMemcpy(back.data(), d, 4096, cudaMemcpyDeviceToHost));
  }

  // Stream-ordered calls with bad ranges: CUDA refuses them when they are
  // called; a remoting layer may report them at the latest at the next
  // synchronisation of that stream. Either way the error must not be lost,
  // and the stream keeps working afterwards (the error is not sticky).
  cudaStream_t s = nullptr;
  if (have && have2 && ok_rc("errors cudaStreamCreate", cudaStreamCreate(&s))) {
    struct async_case {
      const char* name;
      int kind;  // 0 H2D, 1 D2H, 2 D2D, 3 memset
    } cases[] = {{"cudaMemcpyAsync H2D past the end", 0},
                 {"cudaMemcpyAsync D2H past the end", 1},
                 {"cudaMemcpyAsync D2D past the end", 2},
                 {"cudaMemsetAsync past the end", 3}};
    for (const async_case& c : cases) {
      const std::string nm = std::string("errors ") + c.name;
      cudaError_t rc = cudaSuccess;
      switch (c.kind) {
        case 0: rc = cudaMemcpyAsync(d, h.data(), 4097, cudaMemcpyHostToDevice, s); break;
        case 1: rc = cudaMemcpyAsync(h.data(), d, 4097, cudaMemcpyDeviceToHost, s); break;
        case 2: rc = cudaMemcpyAsync(d2, d, 4097, cudaMemcpyDeviceToDevice, s); break;
        default: rc = cudaMemsetAsync(d, 3, 4097, s); break;
      }
      if (rc == cudaErrorInvalidValue) {
        cudaGetLastError();
        R.pass(nm + " (refused at the call)");
        ok_rc(nm + ": stream synchronises clean", cudaStreamSynchronize(s));
      } else if (rc == cudaSuccess) {
        const cudaError_t sync = cudaStreamSynchronize(s);
        cudaGetLastError();
        R.check(nm + " (reported at the stream's synchronisation)", sync == cudaErrorInvalidValue,
                "the call returned cudaSuccess and cudaStreamSynchronize " + describe(sync, cudaErrorInvalidValue));
      } else {
        cudaGetLastError();
        R.fail(nm, describe(rc, cudaErrorInvalidValue));
      }
      ok_rc(nm + ": stream works afterwards", cudaMemsetAsync(d, 0x44, 4096, s));
      ok_rc(nm + ": stream synchronises afterwards", cudaStreamSynchronize(s));
    }
    std::vector<uint8_t> back(4096, 0);
    ok_rc("errors D2H after async errors", cudaMemcpy(back.data(), d, 4096, cudaMemcpyDeviceToHost));
    check_value("errors data after async errors", back.data(), 0x44, 4096);
    ok_rc("errors cudaStreamDestroy", cudaStreamDestroy(s));
  }

  // Bogus handles. NVIDIA's runtime dereferences a stream handle (a bogus one
  // crashes the process: undefined behaviour natively); vgpu's handles are
  // host-issued ids that the mediator checks, so under vgpu they must be refused.
  if (g_expect_vgpu) {
    expect_rc("errors cudaStreamDestroy of a bogus handle",
              cudaStreamDestroy(reinterpret_cast<cudaStream_t>(0xdead1230)), cudaErrorInvalidResourceHandle);
    expect_rc("errors cudaEventDestroy of a bogus handle",
              cudaEventDestroy(reinterpret_cast<cudaEvent_t>(0xdead4560)), cudaErrorInvalidResourceHandle);
    expect_rc("errors cudaStreamSynchronize of a bogus handle",
              cudaStreamSynchronize(reinterpret_cast<cudaStream_t>(0xdead1230)), cudaErrorInvalidResourceHandle);
    // Stream-ordered calls are posted: the error may come at the call or at
    // the next synchronising call, but it must come.
    auto posted_refused = [&](const std::string& nm, cudaError_t rc) {
      const cudaError_t seen = rc != cudaSuccess ? rc : cudaDeviceSynchronize();
      cudaGetLastError();
      R.check(nm, seen == cudaErrorInvalidResourceHandle,
              "the call and the next cudaDeviceSynchronize gave " + describe(seen, cudaErrorInvalidResourceHandle));
    };
    posted_refused("errors cudaMemsetAsync on a bogus stream",
                   cudaMemsetAsync(d, 0, 16, reinterpret_cast<cudaStream_t>(0xdead1230)));
    posted_refused("errors cudaEventRecord of a bogus event",
                   cudaEventRecord(reinterpret_cast<cudaEvent_t>(0xdead4560), nullptr));
    ok_rc("errors device synchronises clean after bogus handles", cudaDeviceSynchronize());
  } else {
    R.skip("errors bogus stream and event handles", "undefined behaviour in NVIDIA's runtime (it crashes)");
  }

  // Elapsed time needs timing events.
  cudaEvent_t e1 = nullptr, e2 = nullptr;
  if (ok_rc("errors cudaEventCreateWithFlags(DisableTiming)", cudaEventCreateWithFlags(&e1, cudaEventDisableTiming)) &&
      ok_rc("errors cudaEventCreateWithFlags(DisableTiming) second", cudaEventCreateWithFlags(&e2, cudaEventDisableTiming))) {
    ok_rc("errors cudaEventRecord e1", cudaEventRecord(e1, nullptr));
    ok_rc("errors cudaEventRecord e2", cudaEventRecord(e2, nullptr));
    ok_rc("errors cudaEventSynchronize e2", cudaEventSynchronize(e2));
    float ms = 0;
    expect_rc("errors cudaEventElapsedTime without timing", cudaEventElapsedTime(&ms, e1, e2),
              cudaErrorInvalidResourceHandle);
  }
  if (e1) ok_rc("errors cudaEventDestroy e1", cudaEventDestroy(e1));
  if (e2) ok_rc("errors cudaEventDestroy e2", cudaEventDestroy(e2));

  void* huge = nullptr;
  expect_rc("errors cudaMalloc 2^50 bytes", cudaMalloc(&huge, 1ull << 50), cudaErrorMemoryAllocation);

  if (g_expect_vgpu) {
    void* managed = nullptr;
    expect_rc("errors unimplemented cudaMallocManaged", cudaMallocManaged(&managed, 4096, cudaMemAttachGlobal),
              cudaErrorNotSupported);
  } else {
    R.skip("errors unimplemented cudaMallocManaged", "only vgpu leaves it unimplemented");
  }

  // Documented: an unknown code is "unrecognized error code", not some other error's name.
  const char* unk_name = cudaGetErrorName(static_cast<cudaError_t>(99999));
  R.check("errors cudaGetErrorName(unknown code)", unk_name && std::strcmp(unk_name, "unrecognized error code") == 0,
          std::string("got ") + (unk_name ? unk_name : "(null)"));
  const char* unk_str = cudaGetErrorString(static_cast<cudaError_t>(99999));
  R.check("errors cudaGetErrorString(unknown code)", unk_str && std::strcmp(unk_str, "unrecognized error code") == 0,
          std::string("got ") + (unk_str ? unk_str : "(null)"));
  // After all that, ordinary work still works.
  R.check("errors no error pending", cudaPeekAtLastError() == cudaSuccess, err_name(cudaPeekAtLastError()));
  void* p = nullptr;
  if (ok_rc("errors cudaMalloc afterwards", cudaMalloc(&p, 100000))) {
    std::vector<uint8_t> src(100000), back(100000, 0);
    prng(7).fill(src.data(), src.size());
    ok_rc("errors H2D afterwards", cudaMemcpy(p, src.data(), src.size(), cudaMemcpyHostToDevice));
    ok_rc("errors D2H afterwards", cudaMemcpy(back.data(), p, back.size(), cudaMemcpyDeviceToHost));
    check_bytes("errors data afterwards", back.data(), src.data(), src.size());
    ok_rc("errors cudaFree afterwards", cudaFree(p));
  }
  if (have) ok_rc("errors cudaFree 4096", cudaFree(d));
  if (have2) ok_rc("errors cudaFree 4096 second", cudaFree(d2));
  if (have) expect_rc("errors double cudaFree", cudaFree(d), cudaErrorInvalidValue);
}


// --- misuse ------------------------------------------------------------------------------

// Copies whose kind contradicts the pointers. NVIDIA's runtime (unified
// addressing) refuses those that name host memory where device memory is
// required, and carries out host-to-host copies whatever the pointers are.
// A remoting layer must never crash the program on them. Each check is
// announced first (RUN) so that a crash shows which one it was.
void run_misuse() {
  void* d = nullptr;
  if (!ok_rc("misuse cudaMalloc", cudaMalloc(&d, 4096))) return;
  ok_rc("misuse cudaMemset", cudaMemset(d, 0x5c, 4096));
  std::vector<uint8_t> h(4096, 0x01), h2(4096, 0x02);
  auto announce = [](const char* name) {
    std::printf("RUN  misuse %s\n", name);
    std::fflush(stdout);
  };

  announce("kind H2D with a device source and a host destination");
  expect_rc("misuse kind H2D with a device source and a host destination",
            cudaMemcpy(h.data(), d, 16, cudaMemcpyHostToDevice), cudaErrorInvalidValue);
  announce("kind D2H with a host source and a device destination");
  expect_rc("misuse kind D2H with a host source and a device destination",
            cudaMemcpy(d, h.data(), 16, cudaMemcpyDeviceToHost), cudaErrorInvalidValue);
  announce("cudaMemcpyAsync kind H2D with a device source");
  expect_rc("misuse cudaMemcpyAsync kind H2D with a device source",
            cudaMemcpyAsync(h.data(), d, 16, cudaMemcpyHostToDevice, nullptr), cudaErrorInvalidValue);
  ok_rc("misuse cudaDeviceSynchronize", cudaDeviceSynchronize());
  announce("kind D2D with host pointers");
  expect_rc("misuse kind D2D with host pointers", cudaMemcpy(h2.data(), h.data(), 16, cudaMemcpyDeviceToDevice),
            cudaErrorInvalidValue);
  announce("kind D2H with a host source");
  expect_rc("misuse kind D2H with a host source", cudaMemcpy(h2.data(), h.data(), 16, cudaMemcpyDeviceToHost),
            cudaErrorInvalidValue);
  announce("kind H2D with a host destination");
  expect_rc("misuse kind H2D with a host destination", cudaMemcpy(h2.data(), h.data(), 16, cudaMemcpyHostToDevice),
            cudaErrorInvalidValue);
  announce("cudaMemset on pageable host memory");
  expect_rc("misuse cudaMemset on pageable host memory", cudaMemset(h.data(), 0, 16), cudaErrorInvalidValue);
  R.check("misuse host buffers untouched by refused calls",
          compare_value(h.data(), 0x01, h.size()).empty() && compare_value(h2.data(), 0x02, h2.size()).empty(),
          "a refused call wrote host memory");

  announce("kind H2H with a device source");
  if (ok_rc("misuse kind H2H with a device source", cudaMemcpy(h.data(), d, 16, cudaMemcpyHostToHost)))
    check_value("misuse kind H2H with a device source data", h.data(), 0x5c, 16);
  announce("kind H2H with a device destination");
  std::vector<uint8_t> src(16, 0x77), back(16, 0);
  if (ok_rc("misuse kind H2H with a device destination", cudaMemcpy(d, src.data(), 16, cudaMemcpyHostToHost))) {
    ok_rc("misuse D2H after H2H into device memory", cudaMemcpy(back.data(), d, 16, cudaMemcpyDeviceToHost));
    check_value("misuse kind H2H with a device destination data", back.data(), 0x77, 16);
  }
  ok_rc("misuse cudaFree", cudaFree(d));
}

// --- threads ---------------------------------------------------------------------------

// Several host threads use the runtime at once, each with its own stream and
// buffers; the last error is per thread.
void run_threads(uint64_t seed) {
  {
    std::atomic<int> step{0};
    cudaError_t seen_by_a = cudaSuccess, seen_by_b = cudaErrorUnknown, a_after = cudaErrorUnknown;
    std::thread a([&] {
      cudaGetLastError();
      cudaSetDevice(-1);  // fails: this thread's last error
      step = 1;
      while (step.load() != 2) std::this_thread::yield();
      seen_by_a = cudaPeekAtLastError();
      cudaGetLastError();
      a_after = cudaPeekAtLastError();
    });
    std::thread b([&] {
      while (step.load() != 1) std::this_thread::yield();
      seen_by_b = cudaPeekAtLastError();
      step = 2;
    });
    a.join();
    b.join();
    R.check("threads last error seen by the failing thread", seen_by_a == cudaErrorInvalidDevice,
            describe(seen_by_a, cudaErrorInvalidDevice));
    R.check("threads last error not seen by another thread", seen_by_b == cudaSuccess,
            describe(seen_by_b, cudaSuccess));
    R.check("threads last error cleared", a_after == cudaSuccess, describe(a_after, cudaSuccess));
  }

  constexpr int kThreads = 4;
  constexpr int kIterations = 25;
  std::atomic<int> failures{0};
  std::vector<std::thread> ts;
  for (int t = 0; t < kThreads; ++t) {
    ts.emplace_back([t, seed, &failures] {
      auto bad = [&](const std::string& what) {
        ++failures;
        R.fail("threads worker " + std::to_string(t), what);
      };
      if (cudaSetDevice(0) != cudaSuccess) return bad("cudaSetDevice(0)");
      cudaStream_t st = nullptr;
      if (cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking) != cudaSuccess) return bad("cudaStreamCreate");
      prng rng(seed * 1000 + static_cast<uint64_t>(t));
      for (int i = 0; i < kIterations; ++i) {
        const size_t n = 1 + rng.next() % 300000;
        std::vector<uint8_t> src(n), back(n + 64, 0);
        rng.fill(src.data(), n);
        const uint8_t v = static_cast<uint8_t>(1 + rng.next() % 255);
        void* d = nullptr;
        if (cudaMalloc(&d, n + 64) != cudaSuccess) return bad("cudaMalloc");
        cudaError_t rc = cudaMemsetAsync(d, v, n + 64, st);
        if (rc == cudaSuccess) rc = cudaMemcpyAsync(d, src.data(), n, cudaMemcpyHostToDevice, st);
        if (rc == cudaSuccess) rc = cudaMemcpyAsync(back.data(), d, n + 64, cudaMemcpyDeviceToHost, st);
        if (rc == cudaSuccess) rc = cudaStreamSynchronize(st);
        if (rc != cudaSuccess) {
          cudaFree(d);
          return bad(std::string("iteration ") + std::to_string(i) + ": " + err_name(rc));
        }
        std::string diff = compare(back.data(), src.data(), n);
        if (diff.empty()) diff = compare_value(back.data() + n, v, 64);
        if (!diff.empty()) {
          cudaFree(d);
          return bad(std::string("iteration ") + std::to_string(i) + ": " + diff);
        }
        if (cudaFree(d) != cudaSuccess) return bad("cudaFree");
      }
      if (cudaStreamDestroy(st) != cudaSuccess) return bad("cudaStreamDestroy");
      int dev = -1;
      if (cudaGetDevice(&dev) != cudaSuccess || dev != 0) return bad("cudaGetDevice");
      if (cudaPeekAtLastError() != cudaSuccess) return bad("an error was left pending");
    });
  }
  for (std::thread& t : ts) t.join();
  R.check("threads " + std::to_string(kThreads) + " threads x " + std::to_string(kIterations) + " iterations",
          failures.load() == 0, std::to_string(failures.load()) + " thread(s) failed");
}

// --- session lifetime helpers (for the integration tests) ------------------------------

// Prints the memory the device reports.
void run_meminfo() {
  size_t free_b = 0, total = 0;
  if (ok_rc("meminfo cudaMemGetInfo", cudaMemGetInfo(&free_b, &total)))
    std::printf("MEMINFO free=%zu total=%zu\n", free_b, total);
}

// Allocates `mib` MiB (and a stream and an event), prints its address, and exits
// without freeing anything: at once, or once `release_file` exists, after
// checking that the memory still holds what was written (nobody else changed it).
void run_hold(size_t mib, uint64_t seed, const std::string& release_file) {
  const size_t n = mib * MiB;
  void* d = nullptr;
  if (!ok_rc("hold cudaMalloc " + std::to_string(mib) + " MiB", cudaMalloc(&d, n))) return;
  const size_t head = n < MiB ? n : MiB;
  std::vector<uint8_t> pat(head), back(head, 0);
  prng(seed).fill(pat.data(), head);
  ok_rc("hold memset", cudaMemset(d, 0x6b, n));
  ok_rc("hold H2D", cudaMemcpy(d, pat.data(), head, cudaMemcpyHostToDevice));
  cudaStream_t s = nullptr;
  cudaEvent_t e = nullptr;
  ok_rc("hold cudaStreamCreate", cudaStreamCreate(&s));
  ok_rc("hold cudaEventCreate", cudaEventCreate(&e));
  ok_rc("hold cudaEventRecord", cudaEventRecord(e, s));
  ok_rc("hold cudaStreamSynchronize", cudaStreamSynchronize(s));
  std::printf("PTR %p\nHOLDING\n", d);
  std::fflush(stdout);
  if (release_file.empty()) return;
  struct stat st;
  const auto t0 = std::chrono::steady_clock::now();
  while (::stat(release_file.c_str(), &st) != 0) {
    if (std::chrono::steady_clock::now() - t0 > std::chrono::seconds(300)) {
      R.fail("hold release", "release file " + release_file + " never appeared");
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ok_rc("hold D2H head", cudaMemcpy(back.data(), d, head, cudaMemcpyDeviceToHost));
  check_bytes("hold memory unchanged (head)", back.data(), pat.data(), head);
  if (n > head) {
    std::vector<uint8_t> tailb(MiB, 0);
    const size_t tl = n - head < MiB ? n - head : MiB;
    ok_rc("hold D2H tail", cudaMemcpy(tailb.data(), dev_at(d, n - tl), tl, cudaMemcpyDeviceToHost));
    check_value("hold memory unchanged (tail)", tailb.data(), 0x6b, tl);
  }
}

// Tries to use a device pointer this process never allocated (another process's):
// every use is refused.
void run_foreign(uint64_t ptr) {
  void* p = reinterpret_cast<void*>(static_cast<uintptr_t>(ptr));
  std::vector<uint8_t> h(4096, 0x11);
  expect_rc("foreign D2H", cudaMemcpy(h.data(), p, 4096, cudaMemcpyDeviceToHost), cudaErrorInvalidValue);
  R.check("foreign D2H leaked nothing", compare_value(h.data(), 0x11, 4096).empty(), "host buffer changed");
  expect_rc("foreign H2D", cudaMemcpy(p, h.data(), 4096, cudaMemcpyHostToDevice), cudaErrorInvalidValue);
  expect_rc("foreign memset", cudaMemset(p, 0, 4096), cudaErrorInvalidValue);
  void* own = nullptr;
  if (ok_rc("foreign cudaMalloc own", cudaMalloc(&own, 4096))) {
    expect_rc("foreign D2D from", cudaMemcpy(own, p, 4096, cudaMemcpyDeviceToDevice), cudaErrorInvalidValue);
    expect_rc("foreign D2D to", cudaMemcpy(p, own, 4096, cudaMemcpyDeviceToDevice), cudaErrorInvalidValue);
    ok_rc("foreign cudaFree own", cudaFree(own));
  }
  expect_rc("foreign cudaFree", cudaFree(p), cudaErrorInvalidValue);
}

// --- main ------------------------------------------------------------------------------

// --- the rest of the runtime: stream queries, limits, pitched copies, PCI ids ----

void run_runtime() {
  int least = 0, greatest = 0;
  if (ok_rc("runtime cudaDeviceGetStreamPriorityRange", cudaDeviceGetStreamPriorityRange(&least, &greatest)))
    R.check("runtime priority range greatest <= least", greatest <= least,
            std::to_string(greatest) + " .. " + std::to_string(least));
  cudaStream_t hi = nullptr, lo = nullptr;
  if (ok_rc("runtime cudaStreamCreateWithPriority", cudaStreamCreateWithPriority(&hi, cudaStreamNonBlocking, greatest)) &&
      ok_rc("runtime cudaStreamCreate", cudaStreamCreate(&lo))) {
    int p = 12345;
    if (ok_rc("runtime cudaStreamGetPriority", cudaStreamGetPriority(hi, &p)))
      R.check("runtime stream priority as created", p == greatest, std::to_string(p));
    unsigned f = 12345;
    if (ok_rc("runtime cudaStreamGetFlags", cudaStreamGetFlags(hi, &f)))
      R.check("runtime stream flags as created", f == cudaStreamNonBlocking, std::to_string(f));
    if (ok_rc("runtime cudaStreamGetFlags(plain)", cudaStreamGetFlags(lo, &f)))
      R.check("runtime plain stream flags 0", f == cudaStreamDefault, std::to_string(f));
    unsigned long long id1 = 0, id2 = 0;
    if (ok_rc("runtime cudaStreamGetId", cudaStreamGetId(hi, &id1)) &&
        ok_rc("runtime cudaStreamGetId(2)", cudaStreamGetId(lo, &id2)))
      R.check("runtime stream ids differ", id1 != id2, std::to_string(id1));
    int dev = -1;
    if (ok_rc("runtime cudaStreamGetDevice", cudaStreamGetDevice(hi, &dev)))
      R.check("runtime stream device 0", dev == 0, std::to_string(dev));
    cudaEvent_t ev = nullptr;
    if (ok_rc("runtime cudaEventCreate", cudaEventCreate(&ev))) {
      ok_rc("runtime cudaEventRecordWithFlags", cudaEventRecordWithFlags(ev, hi, cudaEventRecordDefault));
      ok_rc("runtime cudaEventSynchronize after RecordWithFlags", cudaEventSynchronize(ev));
      expect_rc("runtime cudaEventRecordWithFlags bad flags", cudaEventRecordWithFlags(ev, hi, 0x80),
                cudaErrorInvalidValue);
      cudaEventDestroy(ev);
    }
    cudaStreamDestroy(hi);
    cudaStreamDestroy(lo);
  }

  size_t stack = 0;
  if (ok_rc("runtime cudaDeviceGetLimit(StackSize)", cudaDeviceGetLimit(&stack, cudaLimitStackSize))) {
    R.check("runtime stack limit > 0", stack > 0, std::to_string(stack));
    if (ok_rc("runtime cudaDeviceSetLimit(StackSize)", cudaDeviceSetLimit(cudaLimitStackSize, stack * 2))) {
      size_t now = 0;
      if (ok_rc("runtime cudaDeviceGetLimit after set", cudaDeviceGetLimit(&now, cudaLimitStackSize)))
        R.check("runtime stack limit raised", now >= stack * 2, std::to_string(now));
      cudaDeviceSetLimit(cudaLimitStackSize, stack);
    }
  }
  // A limit that does not exist: cudaErrorInvalidValue (measured on the H100).
  expect_rc("runtime cudaDeviceGetLimit(bad limit)", cudaDeviceGetLimit(&stack, static_cast<cudaLimit>(0x77)),
            cudaErrorInvalidValue);

  // Pitched copies: a 37 x 13 block in 64-byte rows, through every direction.
  const size_t width = 37, height = 13, pitch = 64;
  std::vector<uint8_t> host(width * height), back(width * height, 0), wide(pitch * height, 0);
  prng rng(7);
  rng.fill(host.data(), host.size());
  void *d1 = nullptr, *d2 = nullptr;
  if (ok_rc("runtime cudaMalloc 2D", cudaMalloc(&d1, pitch * height)) && ok_rc("runtime cudaMalloc 2D (2)", cudaMalloc(&d2, pitch * height))) {
    ok_rc("runtime cudaMemset 2D", cudaMemset(d1, 0, pitch * height));
    ok_rc("runtime cudaMemcpy2D H2D", cudaMemcpy2D(d1, pitch, host.data(), width, width, height, cudaMemcpyHostToDevice));
    ok_rc("runtime cudaMemcpy2DAsync D2D", cudaMemcpy2DAsync(d2, pitch, d1, pitch, width, height, cudaMemcpyDeviceToDevice, nullptr));
    ok_rc("runtime cudaMemcpy2D D2H", cudaMemcpy2D(back.data(), width, d2, pitch, width, height, cudaMemcpyDeviceToHost));
    check_bytes("runtime 2D round trip", back.data(), host.data(), host.size());
    ok_rc("runtime cudaMemcpy D2H whole pitched block", cudaMemcpy(wide.data(), d1, wide.size(), cudaMemcpyDeviceToHost));
    bool gaps_zero = true;
    for (size_t r = 0; r < height; ++r)
      for (size_t c = width; c < pitch; ++c) gaps_zero = gaps_zero && wide[r * pitch + c] == 0;
    R.check("runtime 2D copy leaves the pitch padding alone", gaps_zero, "bytes past the width were written");
    expect_rc("runtime cudaMemcpy2D width > pitch", cudaMemcpy2D(d2, 16, d1, pitch, 17, 2, cudaMemcpyDeviceToDevice),
              cudaErrorInvalidPitchValue);
    // The last row runs past the end of the allocation: refused.
    expect_rc("runtime cudaMemcpy2D D2D past the end",
              cudaMemcpy2D(d2, pitch, d1, pitch, width, height + 1, cudaMemcpyDeviceToDevice), cudaErrorInvalidValue);
    ok_rc("runtime work goes on after a refused 2D copy",
          cudaMemcpy2D(d2, pitch, d1, pitch, width, height, cudaMemcpyDeviceToDevice));
  }
  cudaGetLastError();
  cudaFree(d1);
  cudaFree(d2);

  char bus[64] = {0};
  if (ok_rc("runtime cudaDeviceGetPCIBusId", cudaDeviceGetPCIBusId(bus, sizeof bus, 0))) {
    R.check("runtime PCI bus id looks like dddd:bb:dd.f", std::strchr(bus, ':') && std::strchr(bus, '.'), bus);
    int back_dev = -1;
    if (ok_rc("runtime cudaDeviceGetByPCIBusId", cudaDeviceGetByPCIBusId(&back_dev, bus)))
      R.check("runtime PCI bus id round trip", back_dev == 0, std::to_string(back_dev));
  }
  int can = -1;
  if (ok_rc("runtime cudaDeviceCanAccessPeer(0,0)", cudaDeviceCanAccessPeer(&can, 0, 0)))
    R.check("runtime a device is not its own peer", can == 0, std::to_string(can));
  unsigned flags = 0;
  if (ok_rc("runtime cudaGetDeviceFlags", cudaGetDeviceFlags(&flags)))
    R.check("runtime device flags include MapHost", (flags & cudaDeviceMapHost) != 0, std::to_string(flags));
  cudaFuncCache cc = cudaFuncCachePreferShared;
  ok_rc("runtime cudaDeviceSetCacheConfig", cudaDeviceSetCacheConfig(cudaFuncCachePreferL1));
  if (ok_rc("runtime cudaDeviceGetCacheConfig", cudaDeviceGetCacheConfig(&cc)))
    R.check("runtime cache config round trip", cc == cudaFuncCachePreferL1, std::to_string(cc));
  cudaDeviceSetCacheConfig(cudaFuncCachePreferNone);
  ok_rc("runtime cudaProfilerStart", cudaProfilerStart());
  ok_rc("runtime cudaProfilerStop", cudaProfilerStop());
  ok_rc("runtime cudaCtxResetPersistingL2Cache", cudaCtxResetPersistingL2Cache());
}

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

int usage() {
  std::fprintf(stderr,
               "usage: vgpu-guest-test [--expect-vgpu] [--seed N] [--seconds N] [--mib N] [--ptr P]\n"
               "                       [--release-file PATH]\n"
               "                       integrity|async|device|errors|threads|misuse|runtime|all|soak|meminfo|hold|foreign\n");
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  uint64_t seed = 1;
  double seconds = 5;
  size_t mib = 64;
  uint64_t ptr = 0;
  std::string cmd, release_file;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--expect-vgpu") {
      g_expect_vgpu = true;
    } else if (a == "--seed" && i + 1 < argc) {
      seed = std::strtoull(argv[++i], nullptr, 0);
    } else if (a == "--seconds" && i + 1 < argc) {
      seconds = std::strtod(argv[++i], nullptr);
    } else if (a == "--mib" && i + 1 < argc) {
      mib = std::strtoull(argv[++i], nullptr, 0);
    } else if (a == "--ptr" && i + 1 < argc) {
      ptr = std::strtoull(argv[++i], nullptr, 0);
    } else if (a == "--release-file" && i + 1 < argc) {
      release_file = argv[++i];
    } else if (a.rfind("--", 0) == 0 || !cmd.empty()) {
      return usage();
    } else {
      cmd = a;
    }
  }
  if (cmd.empty()) return usage();

  if (g_expect_vgpu) check_vgpu_loaded();

  if (cmd == "integrity") {
    run_integrity(seed, false);
  } else if (cmd == "async") {
    run_async(seed);
  } else if (cmd == "device") {
    run_device();
  } else if (cmd == "errors") {
    run_errors();
  } else if (cmd == "threads") {
    run_threads(seed);
  } else if (cmd == "misuse") {
    run_misuse();
  } else if (cmd == "runtime") {
    run_runtime();
  } else if (cmd == "all") {
    run_device();
    run_integrity(seed, false);
    run_async(seed);
    run_errors();
    run_threads(seed);
    run_misuse();
    run_runtime();
  } else if (cmd == "meminfo") {
    run_meminfo();
  } else if (cmd == "hold") {
    run_hold(mib, seed, release_file);
  } else if (cmd == "foreign") {
    if (ptr == 0) return usage();
    run_foreign(ptr);
  } else if (cmd == "soak") {
    R.quiet = true;
    const auto t0 = std::chrono::steady_clock::now();
    uint64_t iterations = 0;
    do {
      R.prefix = "soak#" + std::to_string(iterations) + " ";
      run_integrity(seed + iterations, true);
      ++iterations;
    } while (R.failed == 0 &&
             std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < seconds);
    R.quiet = false;
    R.prefix.clear();
    R.check("soak " + std::to_string(iterations) + " iterations", R.failed == 0, "failures above");
  } else {
    return usage();
  }

  std::printf("SUMMARY %s: %d passed, %d failed, %d skipped\n", cmd.c_str(), R.passed.load(), R.failed.load(),
              R.skipped.load());
  if (R.failed == 0 && R.passed == 0) {
    std::printf("FAIL %s: no check passed\n", cmd.c_str());
    return 1;
  }
  return R.failed == 0 ? 0 : 1;
}
