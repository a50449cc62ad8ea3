// gemv and the level 1 routines (S and D). All are posted; a reduction in
// host pointer mode then waits for its result, as cuBLAS itself does.
#include <cstring>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "cublas_remote.h"
#include "shim/cublas/handle.h"
#include "shim/transport/bulk_copy.h"

namespace {

using vgpu::protocol::scalar16;
using vgpu::shim::blas::live;

enum reduce_op : int { kDot = 0, kNrm2 = 1, kAsum = 2, kIamax = 3 };
constexpr uint32_t kStreamOrdered = 1;  // copy_from_device flags bit 0: on the given stream

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

// A reduction's result: `size` bytes to *result, at a device address (posted)
// or in host memory (through the handle's result buffer and a stream-ordered
// copy the host answers when the stream got there), as the pointer mode says.
cublasStatus_t reduce(cublasHandle_t handle, reduce_op op, int n, const void* x, int incx, const void* y, int incy,
                      cudaDataType_t t, void* result, uint32_t size) {
  cublasContext* h = live(handle);
  if (h == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (result == nullptr) return CUBLAS_STATUS_INVALID_VALUE;
  if (h->pointer_mode == CUBLAS_POINTER_MODE_DEVICE)
    return vgpu::remote::vgpuBlasReduceDevice(h->id, op, n, const_cast<void*>(x), incx, const_cast<void*>(y), incy, t,
                                              result);
  if (h->result_buffer == nullptr && cudaMalloc(&h->result_buffer, 16) != cudaSuccess)
    return CUBLAS_STATUS_ALLOC_FAILED;
  if (const cublasStatus_t st = vgpu::remote::vgpuBlasReduceDevice(h->id, op, n, const_cast<void*>(x), incx,
                                                                   const_cast<void*>(y), incy, t, h->result_buffer);
      st != CUBLAS_STATUS_SUCCESS)
    return st;
  // A failure of the posted reduction (an operand outside the program's
  // memory) is reported by this copy, a synchronising call.
  const cudaError_t copied =
      vgpu::shim::copy_from_device(static_cast<uint8_t*>(result), reinterpret_cast<uintptr_t>(h->result_buffer), size,
                                   reinterpret_cast<uintptr_t>(h->stream), kStreamOrdered);
  return copied == cudaSuccess ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_EXECUTION_FAILED;
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
