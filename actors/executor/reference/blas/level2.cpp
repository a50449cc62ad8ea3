// Level 2: cublas?gemv.
#include <algorithm>

#include "actors/executor/reference/blas/blas_internal.h"

namespace vgpu::host::reference::blas {

bool gemv(op trans, int64_t m, int64_t n, scalar alpha, const void* a, int64_t lda,
          const void* x, int64_t incx, scalar beta, void* y, int64_t incy, dtype t,
          std::string* why) {
  if (m < 0 || n < 0) return fail(why, "gemv: negative m or n");
  if (lda < std::max<int64_t>(1, m)) return fail(why, "gemv: lda < max(1, m)");
  if (incx == 0 || incy == 0) return fail(why, "gemv: zero increment");
  return with_float_type(t, "gemv", why, [&](auto tag) {
    using T = decltype(tag);
    const T al = to<T>(alpha);
    const T be = to<T>(beta);
    if (m == 0 || n == 0 || (al == T(0) && be == T(1))) return true;
    const bool transposed = trans != op::n;
    const bool conjugate = trans == op::c;
    const int64_t lenx = transposed ? m : n;
    const int64_t leny = transposed ? n : m;
    for (int64_t i = 0; i < leny; ++i) {
      T sum(0);
      if (al != T(0)) {
        for (int64_t j = 0; j < lenx; ++j) {
          const int64_t at = transposed ? j + i * lda : i + j * lda;
          sum += conj_if(to<T>(load(a, at, t)), conjugate) * to<T>(load(x, vidx(j, lenx, incx), t));
        }
      }
      const int64_t iy = vidx(i, leny, incy);
      // beta == 0: y is not read, so NaN or garbage there does not propagate.
      const T v = be == T(0) ? al * sum : al * sum + be * to<T>(load(y, iy, t));
      store(y, iy, t, widen(v));
    }
    return true;
  });
}

}  // namespace vgpu::host::reference::blas
