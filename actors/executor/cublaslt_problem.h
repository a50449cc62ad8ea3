// The checks both executors make on a cuBLASLt problem the guest sent
// (protocol/cublaslt_wire.h) before anything touches memory: shapes that
// agree, layouts vgpu carries, and the device bytes every operand spans, so
// that each can be checked against the session's allocations.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <cublasLt.h>

#include "protocol/cublaslt_wire.h"
#include "protocol/wire_types.h"

namespace vgpu::host::lt {

// Bytes of one element of a cudaDataType_t; 0 for a type vgpu does not carry.
uint64_t element_bytes(int32_t type);

// The problem's sizes once its layouts agree: op(A) m x k, op(B) k x n, D m x n.
struct shape {
  uint64_t m = 0, n = 0, k = 0;
  int32_t batch = 1;
};

// A device range the call reads or writes; `bytes` 0: nothing to check.
struct device_range {
  const char* what;
  uint64_t ptr;
  uint64_t bytes;
};

// True for the epilogues vgpu remotes: none, RELU, BIAS, RELU_BIAS, GELU,
// GELU_BIAS (the ones with an aux matrix or a bias gradient are not yet).
bool epilogue_supported(uint32_t epilogue);
bool epilogue_has_bias(uint32_t epilogue);

// Checks the descriptor and layouts; CUBLAS_STATUS_SUCCESS with *out filled,
// or INVALID_VALUE / NOT_SUPPORTED and `why`.
cublasStatus_t check_problem(const protocol::lt::matmul_desc& d, const protocol::lt::layout& a,
                             const protocol::lt::layout& b, const protocol::lt::layout& c,
                             const protocol::lt::layout& dl, shape* out, std::string* why);

// The device ranges a matmul with this (checked) problem touches: A, B, C, D,
// the bias, the scale pointers, alpha/beta in device pointer mode, the
// workspace. C is always listed (the guest names it even when beta is 0).
// A range of 0 bytes (an empty matrix) needs no check.
std::vector<device_range> matmul_ranges(const protocol::lt::matmul_problem& p, const shape& s,
                                        const protocol::scalar16& alpha,
                                        const protocol::scalar16& beta, uint64_t A, uint64_t B,
                                        uint64_t C, uint64_t D, uint64_t workspace,
                                        uint64_t workspace_size);

// Bytes one alpha/beta of this scale type takes; 0 for an unknown type.
uint64_t scale_bytes(int32_t scale_type);

}  // namespace vgpu::host::lt
