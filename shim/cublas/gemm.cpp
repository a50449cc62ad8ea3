// Every GEMM flavour as one posted wire call (vgpuBlasGemm). Arguments are
// checked here, as cuBLAS checks them, before anything is posted: a posted
// call cannot return a status, so only what the host alone can judge (device
// ranges) is left to it.
#include <cuda_fp16.h>
#include <cublas_v2.h>

#include "cublas_remote.h"
#include "protocol/blas_shapes.h"
#include "shim/cublas/handle.h"

namespace {

namespace shapes = vgpu::protocol::blas;
using vgpu::shim::blas::live;

bool op_ok(cublasOperation_t o) {
  return o == CUBLAS_OP_N || o == CUBLAS_OP_T || o == CUBLAS_OP_C;
}

struct operand {
  const void* ptr;
  cudaDataType_t type;
  int64_t ld;
  int64_t stride;
};

cublasStatus_t gemm(cublasHandle_t handle, cublasOperation_t ta, cublasOperation_t tb, int64_t m, int64_t n,
                    int64_t k, const void* alpha, operand a, operand b, const void* beta, operand c, int64_t batch,
                    cublasComputeType_t compute, cublasGemmAlgo_t algo, bool arrays) {
  cublasContext* h = live(handle);
  if (h == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  const int64_t arows = ta == CUBLAS_OP_N ? m : k;
  const int64_t brows = tb == CUBLAS_OP_N ? k : n;
  if (!op_ok(ta) || !op_ok(tb) || m < 0 || n < 0 || k < 0 || batch < 0 || a.ld < (arows > 1 ? arows : 1) ||
      b.ld < (brows > 1 ? brows : 1) || c.ld < (m > 1 ? m : 1))
    return CUBLAS_STATUS_INVALID_VALUE;
  const int32_t stype = shapes::gemm_scalar_type(compute, c.type);
  if (stype < 0 || shapes::element_size(a.type) == 0 || shapes::element_size(b.type) == 0 ||
      shapes::element_size(c.type) == 0)
    return CUBLAS_STATUS_NOT_SUPPORTED;
  if (m == 0 || n == 0 || batch == 0) return CUBLAS_STATUS_SUCCESS;
  vgpu::protocol::scalar16 al, be;
  if (!vgpu::shim::blas::encode_scalar(*h, alpha, shapes::element_size(stype), &al) ||
      !vgpu::shim::blas::encode_scalar(*h, beta, shapes::element_size(stype), &be))
    return CUBLAS_STATUS_INVALID_VALUE;
  const uint32_t flags = vgpu::shim::blas::pointer_flags(*h) | (arrays ? shapes::kPointerArrays : 0u);
  return vgpu::remote::vgpuBlasGemm(h->id, ta, tb, m, n, k, al, const_cast<void*>(a.ptr), a.type, a.ld, a.stride,
                                    const_cast<void*>(b.ptr), b.type, b.ld, b.stride, be, const_cast<void*>(c.ptr),
                                    c.type, c.ld, c.stride, batch, compute, algo, flags);
}

}  // namespace

extern "C" cublasStatus_t cublasSgemm_v2(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                                         int m, int n, int k, const float* alpha, const float* A, int lda,
                                         const float* B, int ldb, const float* beta, float* C, int ldc) {
  return gemm(handle, transa, transb, m, n, k, alpha, {A, CUDA_R_32F, lda, 0}, {B, CUDA_R_32F, ldb, 0}, beta,
              {C, CUDA_R_32F, ldc, 0}, 1, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT, false);
}

extern "C" cublasStatus_t cublasDgemm_v2(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                                         int m, int n, int k, const double* alpha, const double* A, int lda,
                                         const double* B, int ldb, const double* beta, double* C, int ldc) {
  return gemm(handle, transa, transb, m, n, k, alpha, {A, CUDA_R_64F, lda, 0}, {B, CUDA_R_64F, ldb, 0}, beta,
              {C, CUDA_R_64F, ldc, 0}, 1, CUBLAS_COMPUTE_64F, CUBLAS_GEMM_DEFAULT, false);
}

extern "C" cublasStatus_t cublasHgemm(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m,
                                      int n, int k, const __half* alpha, const __half* A, int lda, const __half* B,
                                      int ldb, const __half* beta, __half* C, int ldc) {
  return gemm(handle, transa, transb, m, n, k, alpha, {A, CUDA_R_16F, lda, 0}, {B, CUDA_R_16F, ldb, 0}, beta,
              {C, CUDA_R_16F, ldc, 0}, 1, CUBLAS_COMPUTE_16F, CUBLAS_GEMM_DEFAULT, false);
}

extern "C" cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb,
                                       int m, int n, int k, const void* alpha, const void* A, cudaDataType Atype,
                                       int lda, const void* B, cudaDataType Btype, int ldb, const void* beta, void* C,
                                       cudaDataType Ctype, int ldc, cublasComputeType_t computeType,
                                       cublasGemmAlgo_t algo) {
  return gemm(handle, transa, transb, m, n, k, alpha, {A, Atype, lda, 0}, {B, Btype, ldb, 0}, beta, {C, Ctype, ldc, 0},
              1, computeType, algo, false);
}

extern "C" cublasStatus_t cublasGemmBatchedEx(cublasHandle_t handle, cublasOperation_t transa,
                                              cublasOperation_t transb, int m, int n, int k, const void* alpha,
                                              const void* const Aarray[], cudaDataType Atype, int lda,
                                              const void* const Barray[], cudaDataType Btype, int ldb,
                                              const void* beta, void* const Carray[], cudaDataType Ctype, int ldc,
                                              int batchCount, cublasComputeType_t computeType,
                                              cublasGemmAlgo_t algo) {
  return gemm(handle, transa, transb, m, n, k, alpha, {Aarray, Atype, lda, 0}, {Barray, Btype, ldb, 0}, beta,
              {Carray, Ctype, ldc, 0}, batchCount, computeType, algo, true);
}

extern "C" cublasStatus_t cublasGemmStridedBatchedEx(
    cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n, int k, const void* alpha,
    const void* A, cudaDataType Atype, int lda, long long int strideA, const void* B, cudaDataType Btype, int ldb,
    long long int strideB, const void* beta, void* C, cudaDataType Ctype, int ldc, long long int strideC,
    int batchCount, cublasComputeType_t computeType, cublasGemmAlgo_t algo) {
  return gemm(handle, transa, transb, m, n, k, alpha, {A, Atype, lda, strideA}, {B, Btype, ldb, strideB}, beta,
              {C, Ctype, ldc, strideC}, batchCount, computeType, algo, false);
}

// The typed batched forms: one macro per shape, so the three element types
// cannot drift apart.
#define VGPU_TYPED_BATCHED(NAME, T, DT, COMPUTE)                                                                     \
  extern "C" cublasStatus_t NAME(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m,   \
                                 int n, int k, const T* alpha, const T* const Aarray[], int lda,                     \
                                 const T* const Barray[], int ldb, const T* beta, T* const Carray[], int ldc,        \
                                 int batchCount) {                                                                   \
    return gemm(handle, transa, transb, m, n, k, alpha, {Aarray, DT, lda, 0}, {Barray, DT, ldb, 0}, beta,            \
                {Carray, DT, ldc, 0}, batchCount, COMPUTE, CUBLAS_GEMM_DEFAULT, true);                               \
  }
#define VGPU_TYPED_STRIDED(NAME, T, DT, COMPUTE)                                                                     \
  extern "C" cublasStatus_t NAME(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m,   \
                                 int n, int k, const T* alpha, const T* A, int lda, long long int strideA,           \
                                 const T* B, int ldb, long long int strideB, const T* beta, T* C, int ldc,           \
                                 long long int strideC, int batchCount) {                                            \
    return gemm(handle, transa, transb, m, n, k, alpha, {A, DT, lda, strideA}, {B, DT, ldb, strideB}, beta,          \
                {C, DT, ldc, strideC}, batchCount, COMPUTE, CUBLAS_GEMM_DEFAULT, false);                             \
  }

VGPU_TYPED_BATCHED(cublasSgemmBatched, float, CUDA_R_32F, CUBLAS_COMPUTE_32F)
VGPU_TYPED_BATCHED(cublasDgemmBatched, double, CUDA_R_64F, CUBLAS_COMPUTE_64F)
VGPU_TYPED_BATCHED(cublasHgemmBatched, __half, CUDA_R_16F, CUBLAS_COMPUTE_16F)
VGPU_TYPED_STRIDED(cublasSgemmStridedBatched, float, CUDA_R_32F, CUBLAS_COMPUTE_32F)
VGPU_TYPED_STRIDED(cublasDgemmStridedBatched, double, CUDA_R_64F, CUBLAS_COMPUTE_64F)
VGPU_TYPED_STRIDED(cublasHgemmStridedBatched, __half, CUDA_R_16F, CUBLAS_COMPUTE_16F)
