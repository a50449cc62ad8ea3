// Triangular solves and batched LU (S and D), posted after the argument checks
// cuBLAS makes.
#include <cublas_v2.h>

#include "cublas_remote.h"
#include "shim/cublas/handle.h"

namespace {

using vgpu::protocol::scalar16;
using vgpu::shim::blas::live;

cublasStatus_t trsm(cublasHandle_t handle, cublasSideMode_t side, cublasFillMode_t uplo, cublasOperation_t trans,
                    cublasDiagType_t diag, int m, int n, const void* alpha, const void* A, int lda, void* B, int ldb,
                    int batch, cudaDataType_t t, uint32_t size) {
  cublasContext* h = live(handle);
  if (h == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  const int ka = side == CUBLAS_SIDE_LEFT ? m : n;
  if ((side != CUBLAS_SIDE_LEFT && side != CUBLAS_SIDE_RIGHT) ||
      (uplo != CUBLAS_FILL_MODE_LOWER && uplo != CUBLAS_FILL_MODE_UPPER) ||
      (trans != CUBLAS_OP_N && trans != CUBLAS_OP_T && trans != CUBLAS_OP_C) ||
      (diag != CUBLAS_DIAG_NON_UNIT && diag != CUBLAS_DIAG_UNIT) || m < 0 || n < 0 || lda < (ka > 1 ? ka : 1) ||
      ldb < (m > 1 ? m : 1) || batch < 0)
    return CUBLAS_STATUS_INVALID_VALUE;
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  scalar16 al;
  if (!vgpu::shim::blas::encode_scalar(*h, alpha, size, &al)) return CUBLAS_STATUS_INVALID_VALUE;
  return vgpu::remote::vgpuBlasTrsm(h->id, side, uplo, trans, diag, m, n, al, const_cast<void*>(A), lda, B, ldb,
                                    batch, t, vgpu::shim::blas::pointer_flags(*h));
}

cublasStatus_t getrf(cublasHandle_t handle, int n, const void* Aarray, int lda, int* P, int* info, int batch,
                     cudaDataType_t t) {
  cublasContext* h = live(handle);
  if (h == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (n < 0 || lda < (n > 1 ? n : 1) || batch < 0 || info == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  if (batch == 0) return CUBLAS_STATUS_SUCCESS;
  return vgpu::remote::vgpuBlasGetrfBatched(h->id, n, const_cast<void*>(Aarray), lda, P, info, batch, t);
}

cublasStatus_t getrs(cublasHandle_t handle, cublasOperation_t trans, int n, int nrhs, const void* Aarray, int lda,
                     const int* pivots, const void* Barray, int ldb, int* info, int batch, cudaDataType_t t) {
  cublasContext* h = live(handle);
  if (h == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (info == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  // info (a host int) names the first bad argument by its position, counting
  // from trans, as LAPACK does; the compute itself reports nothing there.
  int bad = 0;
  if (trans != CUBLAS_OP_N && trans != CUBLAS_OP_T && trans != CUBLAS_OP_C) bad = 1;
  else if (n < 0) bad = 2;
  else if (nrhs < 0) bad = 3;
  else if (Aarray == nullptr) bad = 4;
  else if (lda < (n > 1 ? n : 1)) bad = 5;
  else if (Barray == nullptr) bad = 7;
  else if (ldb < (n > 1 ? n : 1)) bad = 8;
  else if (batch < 0) bad = 10;
  *info = -bad;
  if (bad != 0) return CUBLAS_STATUS_INVALID_VALUE;
  if (n == 0 || nrhs == 0 || batch == 0) return CUBLAS_STATUS_SUCCESS;
  return vgpu::remote::vgpuBlasGetrsBatched(h->id, trans, n, nrhs, const_cast<void*>(Aarray), lda,
                                            const_cast<int*>(pivots), const_cast<void*>(Barray), ldb, batch, t);
}

}  // namespace

#define VGPU_SOLVE(P, T, DT)                                                                                          \
  extern "C" cublasStatus_t cublas##P##trsm_v2(cublasHandle_t handle, cublasSideMode_t side, cublasFillMode_t uplo,  \
                                               cublasOperation_t trans, cublasDiagType_t diag, int m, int n,         \
                                               const T* alpha, const T* A, int lda, T* B, int ldb) {                 \
    return trsm(handle, side, uplo, trans, diag, m, n, alpha, A, lda, B, ldb, 0, DT, sizeof(T));                     \
  }                                                                                                                   \
  extern "C" cublasStatus_t cublas##P##trsmBatched(cublasHandle_t handle, cublasSideMode_t side,                     \
                                                   cublasFillMode_t uplo, cublasOperation_t trans,                   \
                                                   cublasDiagType_t diag, int m, int n, const T* alpha,              \
                                                   const T* const A[], int lda, T* const B[], int ldb,               \
                                                   int batchCount) {                                                 \
    /* batch 0 on the wire means "not batched": an empty batch ends here */                                         \
    if (batchCount == 0 && live(handle) != nullptr) return CUBLAS_STATUS_SUCCESS;                                    \
    return trsm(handle, side, uplo, trans, diag, m, n, alpha, A, lda, const_cast<T**>(B), ldb, batchCount, DT,       \
                sizeof(T));                                                                                          \
  }                                                                                                                   \
  extern "C" cublasStatus_t cublas##P##getrfBatched(cublasHandle_t handle, int n, T* const A[], int lda, int* P_,    \
                                                    int* info, int batchSize) {                                      \
    return getrf(handle, n, A, lda, P_, info, batchSize, DT);                                                        \
  }                                                                                                                   \
  extern "C" cublasStatus_t cublas##P##getrsBatched(cublasHandle_t handle, cublasOperation_t trans, int n, int nrhs, \
                                                    const T* const Aarray[], int lda, const int* devIpiv,            \
                                                    T* const Barray[], int ldb, int* info, int batchSize) {          \
    return getrs(handle, trans, n, nrhs, Aarray, lda, devIpiv, Barray, ldb, info, batchSize, DT);                    \
  }

VGPU_SOLVE(S, float, CUDA_R_32F)
VGPU_SOLVE(D, double, CUDA_R_64F)
