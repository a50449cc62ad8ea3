// The NVML functions vgpu does not implement: present, so that a program
// which links or looks up one of them loads and runs, and each answers
// NVML_ERROR_NOT_SUPPORTED whatever its arguments (they are never read; the
// C calling convention lets a callee ignore them).
#include "shim/nvml/nvml_abi.h"

#define VGPU_NVML_UNSUPPORTED(name) \
  extern "C" nvmlReturn_t name() { return NVML_ERROR_NOT_SUPPORTED; }
#include "shim/nvml/nvml_unsupported.inc"
#undef VGPU_NVML_UNSUPPORTED
