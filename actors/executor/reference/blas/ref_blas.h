// CPU BLAS for the reference executor: the arithmetic behind the remoted
// cuBLAS and cuBLASLt calls when there is no GPU (CI, laptops). cuBLAS
// semantics throughout: column-major matrices, leading dimensions in
// elements, 1-based iamax, negative increments walk backwards. Sizes are
// meant to be small (tests); nothing here is tuned.
//
// Every function takes host pointers the caller has already bounds-checked
// against the session's memory, and returns false (with `why`) for what
// cuBLAS answers CUBLAS_STATUS_INVALID_VALUE or NOT_SUPPORTED.
#pragma once

#include <complex>
#include <cstdint>
#include <string>

namespace vgpu::host::reference::blas {

// Element types, named after cudaDataType_t's real and complex members.
enum class dtype { f16, bf16, f32, f64, c32, c64, i8, i32 };
// The size of one element in bytes.
std::size_t element_size(dtype t);

enum class op { n, t, c };  // CUBLAS_OP_N / T / C
enum class side { left, right };
enum class fill { lower, upper };
enum class diag { non_unit, unit };

// A scalar as the caller decoded it (alpha, beta); converted to the
// computation's precision inside.
using scalar = std::complex<double>;

// One operand matrix: `ptr` to element (0,0), `ld` leading dimension.
struct matrix {
  const void* ptr = nullptr;
  dtype type = dtype::f32;
  int64_t ld = 0;
  int64_t stride = 0;  // between batch members, in elements (strided batched)
};
struct out_matrix {
  void* ptr = nullptr;
  dtype type = dtype::f32;
  int64_t ld = 0;
  int64_t stride = 0;
};

// C[i] = alpha * op(A[i]) * op(B[i]) + beta * C[i] for i < batch, computed in
// `compute` (f32 for f16/bf16/f32 unless compute is f64; complex types in
// their own precision; i8 inputs accumulate in i32). m x k op(A), k x n op(B).
bool gemm(op ta, op tb, int64_t m, int64_t n, int64_t k, scalar alpha, const matrix& a,
          const matrix& b, scalar beta, const out_matrix& c, dtype compute, int64_t batch,
          std::string* why);

// Level 2 and 1, one element type for all operands.
bool gemv(op trans, int64_t m, int64_t n, scalar alpha, const void* a, int64_t lda,
          const void* x, int64_t incx, scalar beta, void* y, int64_t incy, dtype t,
          std::string* why);
bool axpy(int64_t n, scalar alpha, const void* x, int64_t incx, void* y, int64_t incy, dtype t,
          std::string* why);
// *result gets one element of type t (conjugate: cublas?dotc).
bool dot(int64_t n, const void* x, int64_t incx, const void* y, int64_t incy, bool conjugate,
         void* result, dtype t, std::string* why);
bool scal(int64_t n, scalar alpha, void* x, int64_t incx, dtype t, std::string* why);
bool copy(int64_t n, const void* x, int64_t incx, void* y, int64_t incy, dtype t,
          std::string* why);
// *result: the real type of t (float for f32/c32, double for f64/c64).
bool nrm2(int64_t n, const void* x, int64_t incx, void* result, dtype t, std::string* why);
bool asum(int64_t n, const void* x, int64_t incx, void* result, dtype t, std::string* why);
// *result: 1-based index of the first element of largest |re|+|im|; 0 when n <= 0.
bool iamax(int64_t n, const void* x, int64_t incx, int32_t* result, dtype t, std::string* why);

// Solves op(A) X = alpha B (left) or X op(A) = alpha B (right); X overwrites B.
bool trsm(side s, fill uplo, op trans, diag d, int64_t m, int64_t n, scalar alpha,
          const void* a, int64_t lda, void* b, int64_t ldb, dtype t, std::string* why);

// LU with partial pivoting of one n x n matrix, as cublas?getrfBatched does for
// each member: pivots (1-based, n of them) may be null (no pivoting); *info 0
// or the 1-based index of the first zero pivot.
bool getrf(int64_t n, void* a, int64_t lda, int32_t* pivots, int32_t* info, dtype t,
           std::string* why);
// Solves op(A) X = B with getrf's factors; *info 0 or -(index of a bad argument).
bool getrs(op trans, int64_t n, int64_t nrhs, const void* a, int64_t lda, const int32_t* pivots,
           void* b, int64_t ldb, int32_t* info, dtype t, std::string* why);

}  // namespace vgpu::host::reference::blas
