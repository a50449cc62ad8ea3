// What the guest library, the reference executor and the cuda executor must
// agree on about cuBLAS operands: element sizes, the scalar type of a GEMM,
// and how many bytes a matrix or vector with a leading dimension or increment
// spans (for argument checks and for checking device ranges against the
// session's ledger). Header-only; CUDA headers for types only.
#pragma once

#include <cstdint>
#include <cstring>

#include <cublas_api.h>
#include <library_types.h>

#include "protocol/wire_types.h"

namespace vgpu::protocol::blas {

// Bits of the `flags` argument of the posted compute calls (cublas.api).
inline constexpr uint32_t kDevicePointerMode = 1u << 0;  // alpha/beta are device addresses
inline constexpr uint32_t kPointerArrays = 1u << 1;      // A, B, C are arrays of pointers

// No operand spans more than this (far beyond any GPU's memory): a larger
// extent is a bad argument, and sums of extents cannot overflow.
inline constexpr uint64_t kMaxSpan = uint64_t{1} << 50;

// Bytes of one element of a cudaDataType_t vgpu supports; 0 for the rest.
inline uint32_t element_size(int32_t t) {
  switch (t) {
    case CUDA_R_16F: case CUDA_R_16BF: return 2;
    case CUDA_R_32F: return 4;
    case CUDA_R_64F: return 8;
    case CUDA_C_32F: return 8;
    case CUDA_C_64F: return 16;
    case CUDA_R_8I: return 1;
    case CUDA_R_32I: return 4;
    default: return 0;
  }
}

// The type of alpha and beta of a GEMM: that of the compute type (complex
// when C is complex), as cublasGemmEx documents; -1 for a compute type vgpu
// does not know.
inline int32_t gemm_scalar_type(int32_t compute, int32_t ctype) {
  const bool complex = ctype == CUDA_C_32F || ctype == CUDA_C_64F;
  switch (compute) {
    case CUBLAS_COMPUTE_16F: case CUBLAS_COMPUTE_16F_PEDANTIC: return CUDA_R_16F;
    case CUBLAS_COMPUTE_32F: case CUBLAS_COMPUTE_32F_PEDANTIC: case CUBLAS_COMPUTE_32F_FAST_16F:
    case CUBLAS_COMPUTE_32F_FAST_16BF: case CUBLAS_COMPUTE_32F_FAST_TF32:
      return complex ? CUDA_C_32F : CUDA_R_32F;
    case CUBLAS_COMPUTE_64F: case CUBLAS_COMPUTE_64F_PEDANTIC:
      return complex ? CUDA_C_64F : CUDA_R_64F;
    case CUBLAS_COMPUTE_32I: case CUBLAS_COMPUTE_32I_PEDANTIC: return CUDA_R_32I;
    default: return -1;
  }
}

// Bytes spanned by a column-major rows x cols matrix with leading dimension
// ld (0 when empty); false on overflow or ld < rows.
inline bool matrix_bytes(int64_t rows, int64_t cols, int64_t ld, uint32_t elem, uint64_t* bytes) {
  if (rows < 0 || cols < 0 || ld < 1 || ld < rows) return false;
  if (rows == 0 || cols == 0) { *bytes = 0; return true; }
  uint64_t r = 0;
  if (__builtin_mul_overflow(static_cast<uint64_t>(cols - 1), static_cast<uint64_t>(ld), &r) ||
      __builtin_add_overflow(r, static_cast<uint64_t>(rows), &r) || __builtin_mul_overflow(r, elem, &r) ||
      r > kMaxSpan)
    return false;
  *bytes = r;
  return true;
}

// Bytes spanned by n elements `inc` apart (either sign: a negative increment
// walks the same span backwards); 0 when n <= 0.
inline bool vector_bytes(int64_t n, int64_t inc, uint32_t elem, uint64_t* bytes) {
  if (n <= 0) { *bytes = 0; return true; }
  if (inc == 0 || inc == INT64_MIN) return false;
  const uint64_t step = static_cast<uint64_t>(inc < 0 ? -inc : inc);
  uint64_t r = 0;
  if (__builtin_mul_overflow(static_cast<uint64_t>(n - 1), step, &r) || __builtin_add_overflow(r, 1u, &r) ||
      __builtin_mul_overflow(r, elem, &r) || r > kMaxSpan)
    return false;
  *bytes = r;
  return true;
}

// Bytes spanned by `batch` members `stride` elements apart, each spanning
// `one` bytes (strided batched calls); false on overflow or a negative stride.
inline bool strided_bytes(uint64_t one, int64_t stride, int64_t batch, uint32_t elem, uint64_t* bytes) {
  if (stride < 0 || batch < 1) return false;
  if (one == 0) { *bytes = 0; return true; }
  uint64_t r = 0;
  if (__builtin_mul_overflow(static_cast<uint64_t>(batch - 1), static_cast<uint64_t>(stride), &r) ||
      __builtin_mul_overflow(r, elem, &r) || __builtin_add_overflow(r, one, &r) || r > kMaxSpan)
    return false;
  *bytes = r;
  return true;
}

// A device address carried in a scalar (device pointer mode).
inline uint64_t scalar_address(const scalar16& s) {
  uint64_t p;
  std::memcpy(&p, s.bytes, sizeof p);
  return p;
}

}  // namespace vgpu::protocol::blas
