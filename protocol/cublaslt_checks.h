// The checks of a cuBLASLt problem (protocol/cublaslt_wire.h) that need no
// memory map: shapes that agree, layouts and epilogues vgpu carries. The
// guest makes them before it posts a matmul (so a bad problem fails at once,
// as with NVIDIA's library), and the host makes them again, never trusting
// the guest.
#pragma once

#include <cstdint>
#include <string>

#include <cublasLt.h>

#include "protocol/cublaslt_wire.h"

namespace vgpu::protocol::lt {

// Bytes of one element of a cudaDataType_t; 0 for a type vgpu does not carry.
uint64_t element_bytes(int32_t type);
// Bytes one alpha/beta of this scale type takes; 0 for an unknown type.
uint64_t scale_bytes(int32_t scale_type);

// The problem's sizes once its layouts agree: op(A) m x k, op(B) k x n, D m x n.
struct shape {
  uint64_t m = 0, n = 0, k = 0;
  int32_t batch = 1;
};

// True for the epilogues vgpu remotes: none, RELU, BIAS, RELU_BIAS, GELU,
// GELU_BIAS (the ones with an aux matrix or a bias gradient are not yet).
bool epilogue_supported(uint32_t epilogue);
bool epilogue_has_bias(uint32_t epilogue);

// Bytes of one bias element: the BIAS_DATA_TYPE when set, else cuBLASLt's
// default (D's type; alpha's for integer kernels; for FP8 kernels, whose
// default depends on the kernel, 4 bytes: the widest it may be, so that the
// range checked on the host is never shorter than the one read). 0: unknown.
uint64_t bias_element_bytes(const matmul_desc& d, const layout& a, const layout& dl);

// Elements one layout spans over all its batch members; false (and `why`)
// for a leading dimension below the matrix or a size that overflows.
bool layout_elements(const layout& l, uint64_t* elements, std::string* why);

// Checks the descriptor and layouts; CUBLAS_STATUS_SUCCESS with *out filled,
// or INVALID_VALUE / NOT_SUPPORTED and `why`.
cublasStatus_t check_problem(const matmul_desc& d, const layout& a, const layout& b, const layout& c,
                             const layout& dl, shape* out, std::string* why);

}  // namespace vgpu::protocol::lt
