// The PASS/FAIL lines of vgpu-driver-test, shared by its files (one group of
// checks per file).
#pragma once

#include <cuda.h>

#include <cstdio>
#include <string>

namespace driver_test {

inline int g_failures = 0;
// --expect-vgpu: checks of vgpu's own rules (not asserted natively).
inline bool g_expect_vgpu = false;

inline void check(bool ok, const std::string& what, const std::string& detail = "") {
  if (ok) {
    std::printf("PASS %s\n", what.c_str());
  } else {
    std::printf("FAIL %s%s%s\n", what.c_str(), detail.empty() ? "" : ": ", detail.c_str());
    ++g_failures;
  }
}

inline std::string name_of(CUresult r) {
  const char* n = nullptr;
  cuGetErrorName(r, &n);
  return n ? n : std::to_string(static_cast<int>(r));
}

// check() that also returns the verdict.
inline bool check_ok(bool ok, const std::string& what, const std::string& detail = "") {
  check(ok, what, detail);
  return ok;
}

inline bool ok_cu(CUresult r, const std::string& what) {
  check(r == CUDA_SUCCESS, what, name_of(r));
  return r == CUDA_SUCCESS;
}

// The groups (each in its own file); `dev` is device 0 with a current context.
void vmm_checks(CUdevice dev);
void module_checks(CUdevice dev, bool reference);
void pointer_checks(CUdevice dev);
void pool_checks(CUdevice dev);

}  // namespace driver_test
