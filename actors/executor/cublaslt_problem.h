// The device bytes every operand of a checked cuBLASLt matmul spans
// (protocol/cublaslt_checks.h checked the rest), so that each executor can
// check them against the session's allocations before anything runs.
#pragma once

#include <cstdint>
#include <vector>

#include "protocol/cublaslt_checks.h"
#include "protocol/wire_types.h"

namespace vgpu::host::lt {

using protocol::lt::check_problem;
using protocol::lt::epilogue_has_bias;
using protocol::lt::shape;

// A device range the call reads or writes; `bytes` 0: nothing to check.
struct device_range {
  const char* what;
  uint64_t ptr;
  uint64_t bytes;
};

// The device ranges a matmul with this (checked) problem touches: A, B, C, D,
// the bias, the scale pointers, alpha/beta in device pointer mode, the
// workspace. C is always listed (the guest names it even when beta is 0).
// A range of 0 bytes (an empty matrix) needs no check.
std::vector<device_range> matmul_ranges(const protocol::lt::matmul_problem& p, const shape& s,
                                        const protocol::scalar16& alpha,
                                        const protocol::scalar16& beta, uint64_t A, uint64_t B,
                                        uint64_t C, uint64_t D, uint64_t workspace,
                                        uint64_t workspace_size);

}  // namespace vgpu::host::lt
