// What the benchmark programs share: argument parsing, fail-fast CUDA checks
// and percentiles. Header-only, so both g++ (vgpu-latency) and nvcc
// (vgpu-kernel-bench) compile it into their single binary.
#pragma once

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <vector>

#include <cuda_runtime_api.h>

namespace vgpu_bench {

// A count from 1 to 100,000,000; false for anything else.
inline bool parse_count(const char* s, long* out) {
  if (!s || !*s) return false;
  char* end = nullptr;
  const long v = std::strtol(s, &end, 10);
  if (*end != '\0' || v < 1 || v > 100000000) return false;
  *out = v;
  return true;
}

// A benchmark whose CUDA call failed measures nothing: say which and stop.
inline void check(const char* program, cudaError_t err, const char* what) {
  if (err == cudaSuccess) return;
  const char* name = cudaGetErrorName(err);
  const char* text = cudaGetErrorString(err);
  std::fprintf(stderr, "%s: %s returned %s (%d: %s)\n", program, what, name ? name : "?", static_cast<int>(err),
               text ? text : "?");
  std::exit(1);
}

// The p-th fraction (0..1) of already sorted samples.
inline double percentile_sorted(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0.0;
  const size_t i = static_cast<size_t>(p * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[std::min(i, sorted.size() - 1)];
}

inline double percentile(std::vector<double> v, double p) {
  std::sort(v.begin(), v.end());
  return percentile_sorted(v, p);
}

}  // namespace vgpu_bench
