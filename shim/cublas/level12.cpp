// gemv and the level 1 routines (S and D). The ones with no host output are
// posted; a reduction in host pointer mode waits for its result, as cuBLAS
// itself does.
#include <cstring>

#include <cublas_v2.h>

#include "cublas_remote.h"
#include "shim/cublas/handle.h"

namespace {

using vgpu::protocol::scalar16;
using vgpu::shim::blas::live;

enum reduce_op : int { kDot = 0, kNrm2 = 1, kAsum = 2, kIamax = 3 };

cublasStatus_t gemv(cublasHandle_t handle, cublasOperation_t trans, int m, int n, const void* alpha, const void* A,
                    int lda, const void* x, int incx, const void* beta, void* y, int incy, cudaDataType_t t,
                    uint32_t size) {
  cublasContext* h = live(handle);
  if (h == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if ((trans != CUBLAS_OP_N && trans != CUBLAS_OP_T && trans != CUBLAS_OP_C) || m < 0 || n < 0 ||
      lda < (m > 1 ? m : 1) || incx == 0 || incy == 0)
    return CUBLAS_STATUS_INVALID_VALUE;
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  scalar16 al, be;
  if (!vgpu::shim::blas::encode_scalar(*h, alpha, size, &al) || !vgpu::shim::blas::encode_scalar(*h, beta, size, &be))
    return CUBLAS_STATUS_INVALID_VALUE;
  return vgpu::remote::vgpuBlasGemv(h->id, trans, m, n, al, const_cast<void*>(A), lda, const_cast<void*>(x), incx, be,
                                    y, incy, t, vgpu::shim::blas::pointer_flags(*h));
}

cublasStatus_t axpy(cublasHandle_t handle, int n, const void* alpha, const void* x, int incx, void* y, int incy,
                    cudaDataType_t t, uint32_t size) {
  cublasContext* h = live(handle);
  if (h == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (n <= 0) return CUBLAS_STATUS_SUCCESS;
  scalar16 al;
  if (!vgpu::shim::blas::encode_scalar(*h, alpha, size, &al)) return CUBLAS_STATUS_INVALID_VALUE;
  return vgpu::remote::vgpuBlasAxpy(h->id, n, al, const_cast<void*>(x), incx, y, incy, t,
                                    vgpu::shim::blas::pointer_flags(*h));
}

cublasStatus_t scal(cublasHandle_t handle, int n, const void* alpha, void* x, int incx, cudaDataType_t t,
                    uint32_t size) {
  cublasContext* h = live(handle);
  if (h == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (n <= 0 || incx <= 0) return CUBLAS_STATUS_SUCCESS;  // cuBLAS does nothing then
  scalar16 al;
  if (!vgpu::shim::blas::encode_scalar(*h, alpha, size, &al)) return CUBLAS_STATUS_INVALID_VALUE;
  return vgpu::remote::vgpuBlasScal(h->id, n, al, x, incx, t, vgpu::shim::blas::pointer_flags(*h));
}

cublasStatus_t copy(cublasHandle_t handle, int n, const void* x, int incx, void* y, int incy, cudaDataType_t t) {
  cublasContext* h = live(handle);
  if (h == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (n <= 0) return CUBLAS_STATUS_SUCCESS;
  return vgpu::remote::vgpuBlasCopy(h->id, n, const_cast<void*>(x), incx, y, incy, t);
}

// A reduction's result: `size` bytes to *result, on the host (waiting) or at
// a device address (posted), as the handle's pointer mode says.
cublasStatus_t reduce(cublasHandle_t handle, reduce_op op, int n, const void* x, int incx, const void* y, int incy,
                      cudaDataType_t t, void* result, uint32_t size) {
  cublasContext* h = live(handle);
  if (h == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (result == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  if (h->pointer_mode == CUBLAS_POINTER_MODE_DEVICE)
    return vgpu::remote::vgpuBlasReduceDevice(h->id, op, n, const_cast<void*>(x), incx, const_cast<void*>(y), incy, t,
                                              result);
  scalar16 r{};
  if (const cublasStatus_t st =
          vgpu::remote::vgpuBlasReduce(h->id, op, n, const_cast<void*>(x), incx, const_cast<void*>(y), incy, t, &r);
      st != CUBLAS_STATUS_SUCCESS)
    return st;
  std::memcpy(result, r.bytes, size);
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace

// One S and one D entry point per routine.
#define VGPU_LEVEL12(P, p, T, DT)                                                                                        \
  extern "C" cublasStatus_t cublas##P##gemv_v2(cublasHandle_t handle, cublasOperation_t trans, int m, int n,         \
                                               const T* alpha, const T* A, int lda, const T* x, int incx,            \
                                               const T* beta, T* y, int incy) {                                      \
    return gemv(handle, trans, m, n, alpha, A, lda, x, incx, beta, y, incy, DT, sizeof(T));                          \
  }                                                                                                                   \
  extern "C" cublasStatus_t cublas##P##axpy_v2(cublasHandle_t handle, int n, const T* alpha, const T* x, int incx,   \
                                               T* y, int incy) {                                                     \
    return axpy(handle, n, alpha, x, incx, y, incy, DT, sizeof(T));                                                  \
  }                                                                                                                   \
  extern "C" cublasStatus_t cublas##P##scal_v2(cublasHandle_t handle, int n, const T* alpha, T* x, int incx) {       \
    return scal(handle, n, alpha, x, incx, DT, sizeof(T));                                                           \
  }                                                                                                                   \
  extern "C" cublasStatus_t cublas##P##copy_v2(cublasHandle_t handle, int n, const T* x, int incx, T* y, int incy) { \
    return copy(handle, n, x, incx, y, incy, DT);                                                                    \
  }                                                                                                                   \
  extern "C" cublasStatus_t cublas##P##dot_v2(cublasHandle_t handle, int n, const T* x, int incx, const T* y,        \
                                              int incy, T* result) {                                                 \
    return reduce(handle, kDot, n, x, incx, y, incy, DT, result, sizeof(T));                                         \
  }                                                                                                                   \
  extern "C" cublasStatus_t cublas##P##nrm2_v2(cublasHandle_t handle, int n, const T* x, int incx, T* result) {      \
    return reduce(handle, kNrm2, n, x, incx, nullptr, 1, DT, result, sizeof(T));                                     \
  }                                                                                                                   \
  extern "C" cublasStatus_t cublas##P##asum_v2(cublasHandle_t handle, int n, const T* x, int incx, T* result) {      \
    return reduce(handle, kAsum, n, x, incx, nullptr, 1, DT, result, sizeof(T));                                     \
  }                                                                                                                   \
  extern "C" cublasStatus_t cublasI##p##amax_v2(cublasHandle_t handle, int n, const T* x, int incx, int* result) {   \
    return reduce(handle, kIamax, n, x, incx, nullptr, 1, DT, result, sizeof(int));                                  \
  }

// p: the lower-case letter of cublasI?amax.
VGPU_LEVEL12(S, s, float, CUDA_R_32F)
VGPU_LEVEL12(D, d, double, CUDA_R_64F)
