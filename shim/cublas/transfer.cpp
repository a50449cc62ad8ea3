// cublasSet/GetVector and Set/GetMatrix (+Async): guest code over the
// runtime's copies. A vector is a one-row matrix whose leading dimension is
// its increment. Contiguous layouts go in one copy; a strided host side is
// packed or unpacked here around one copy; a strided device side goes
// column by column.
#include <cstdint>
#include <cstring>
#include <vector>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>

namespace {

struct layout {
  int64_t rows, cols, elem;
};

bool valid(const layout& l, int64_t lda, int64_t ldb) {
  const int64_t need = l.rows > 1 ? l.rows : 1;
  return l.rows >= 0 && l.cols >= 0 && l.elem > 0 && lda >= need && ldb >= need;
}

// Copies `bytes` between host and device, stream-ordered when `async`.
bool copy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, bool async, cudaStream_t s) {
  const cudaError_t st = async ? cudaMemcpyAsync(dst, src, bytes, kind, s) : cudaMemcpy(dst, src, bytes, kind);
  return st == cudaSuccess;
}

cublasStatus_t set_matrix(const layout& l, const void* A, int64_t lda, void* B, int64_t ldb, bool async,
                          cudaStream_t s) {
  if (!valid(l, lda, ldb)) return CUBLAS_STATUS_INVALID_VALUE;
  if (l.rows == 0 || l.cols == 0) return CUBLAS_STATUS_SUCCESS;
  const size_t col = static_cast<size_t>(l.rows * l.elem);
  const auto* src = static_cast<const uint8_t*>(A);
  auto* dst = static_cast<uint8_t*>(B);
  if (ldb == l.rows) {  // the device side is one block
    if (lda == l.rows)
      return copy(dst, src, col * static_cast<size_t>(l.cols), cudaMemcpyHostToDevice, async, s)
                 ? CUBLAS_STATUS_SUCCESS
                 : CUBLAS_STATUS_MAPPING_ERROR;
    std::vector<uint8_t> packed(col * static_cast<size_t>(l.cols));
    for (int64_t j = 0; j < l.cols; ++j)
      std::memcpy(packed.data() + static_cast<size_t>(j) * col, src + j * lda * l.elem, col);
    // The packed buffer dies here: an asynchronous copy must have taken it.
    if (!copy(dst, packed.data(), packed.size(), cudaMemcpyHostToDevice, async, s) ||
        (async && cudaStreamSynchronize(s) != cudaSuccess))
      return CUBLAS_STATUS_MAPPING_ERROR;
    return CUBLAS_STATUS_SUCCESS;
  }
  for (int64_t j = 0; j < l.cols; ++j)
    if (!copy(dst + j * ldb * l.elem, src + j * lda * l.elem, col, cudaMemcpyHostToDevice, async, s))
      return CUBLAS_STATUS_MAPPING_ERROR;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t get_matrix(const layout& l, const void* A, int64_t lda, void* B, int64_t ldb, bool async,
                          cudaStream_t s) {
  if (!valid(l, lda, ldb)) return CUBLAS_STATUS_INVALID_VALUE;
  if (l.rows == 0 || l.cols == 0) return CUBLAS_STATUS_SUCCESS;
  const size_t col = static_cast<size_t>(l.rows * l.elem);
  const auto* src = static_cast<const uint8_t*>(A);
  auto* dst = static_cast<uint8_t*>(B);
  if (lda == l.rows) {  // the device side is one block
    if (ldb == l.rows)
      return copy(dst, src, col * static_cast<size_t>(l.cols), cudaMemcpyDeviceToHost, async, s)
                 ? CUBLAS_STATUS_SUCCESS
                 : CUBLAS_STATUS_MAPPING_ERROR;
    std::vector<uint8_t> packed(col * static_cast<size_t>(l.cols));
    // The bytes must have arrived before they are spread out.
    if (!copy(packed.data(), src, packed.size(), cudaMemcpyDeviceToHost, async, s) ||
        (async && cudaStreamSynchronize(s) != cudaSuccess))
      return CUBLAS_STATUS_MAPPING_ERROR;
    for (int64_t j = 0; j < l.cols; ++j)
      std::memcpy(dst + j * ldb * l.elem, packed.data() + static_cast<size_t>(j) * col, col);
    return CUBLAS_STATUS_SUCCESS;
  }
  for (int64_t j = 0; j < l.cols; ++j)
    if (!copy(dst + j * ldb * l.elem, src + j * lda * l.elem, col, cudaMemcpyDeviceToHost, async, s))
      return CUBLAS_STATUS_MAPPING_ERROR;
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace

extern "C" cublasStatus_t cublasSetVector(int n, int elemSize, const void* x, int incx, void* devicePtr, int incy) {
  if (n < 0 || incx <= 0 || incy <= 0) return CUBLAS_STATUS_INVALID_VALUE;
  return set_matrix({1, n, elemSize}, x, incx, devicePtr, incy, false, nullptr);
}

extern "C" cublasStatus_t cublasGetVector(int n, int elemSize, const void* x, int incx, void* y, int incy) {
  if (n < 0 || incx <= 0 || incy <= 0) return CUBLAS_STATUS_INVALID_VALUE;
  return get_matrix({1, n, elemSize}, x, incx, y, incy, false, nullptr);
}

extern "C" cublasStatus_t cublasSetVectorAsync(int n, int elemSize, const void* hostPtr, int incx, void* devicePtr,
                                               int incy, cudaStream_t stream) {
  if (n < 0 || incx <= 0 || incy <= 0) return CUBLAS_STATUS_INVALID_VALUE;
  return set_matrix({1, n, elemSize}, hostPtr, incx, devicePtr, incy, true, stream);
}

extern "C" cublasStatus_t cublasGetVectorAsync(int n, int elemSize, const void* devicePtr, int incx, void* hostPtr,
                                               int incy, cudaStream_t stream) {
  if (n < 0 || incx <= 0 || incy <= 0) return CUBLAS_STATUS_INVALID_VALUE;
  return get_matrix({1, n, elemSize}, devicePtr, incx, hostPtr, incy, true, stream);
}

extern "C" cublasStatus_t cublasSetMatrix(int rows, int cols, int elemSize, const void* A, int lda, void* B,
                                          int ldb) {
  return set_matrix({rows, cols, elemSize}, A, lda, B, ldb, false, nullptr);
}

extern "C" cublasStatus_t cublasGetMatrix(int rows, int cols, int elemSize, const void* A, int lda, void* B,
                                          int ldb) {
  return get_matrix({rows, cols, elemSize}, A, lda, B, ldb, false, nullptr);
}

extern "C" cublasStatus_t cublasSetMatrixAsync(int rows, int cols, int elemSize, const void* A, int lda, void* B,
                                               int ldb, cudaStream_t stream) {
  return set_matrix({rows, cols, elemSize}, A, lda, B, ldb, true, stream);
}

extern "C" cublasStatus_t cublasGetMatrixAsync(int rows, int cols, int elemSize, const void* A, int lda, void* B,
                                               int ldb, cudaStream_t stream) {
  return get_matrix({rows, cols, elemSize}, A, lda, B, ldb, true, stream);
}
