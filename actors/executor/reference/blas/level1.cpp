// Level 1: vector-vector routines (cublas?axpy, dot/dotc, scal, copy, nrm2,
// asum, iamax and their *Ex forms with one element type). Two-vector routines
// follow BLAS for negative increments; single-vector ones (scal, nrm2, asum,
// iamax) do nothing / answer 0 for incx <= 0, as reference BLAS does.
#include <cmath>
#include <cstring>

#include "actors/executor/reference/blas/blas_internal.h"

namespace vgpu::host::reference::blas {

namespace {

// Stores a real result: t itself for f16/bf16 (as cublasNrm2Ex answers in the
// input type), otherwise the real type of t.
void store_real(void* result, dtype t, double v) {
  switch (t) {
    case dtype::f16:
    case dtype::bf16: store(result, 0, t, v); return;
    case dtype::f64:
    case dtype::c64: store(result, 0, dtype::f64, v); return;
    default: store(result, 0, dtype::f32, v); return;
  }
}

}  // namespace

bool axpy(int64_t n, scalar alpha, const void* x, int64_t incx, void* y, int64_t incy, dtype t,
          std::string* why) {
  return with_float_type(t, "axpy", why, [&](auto tag) {
    using T = decltype(tag);
    const T a = to<T>(alpha);
    if (n <= 0 || a == T(0)) return true;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t iy = vidx(i, n, incy);
      const T v = a * to<T>(load(x, vidx(i, n, incx), t)) + to<T>(load(y, iy, t));
      store(y, iy, t, widen(v));
    }
    return true;
  });
}

bool dot(int64_t n, const void* x, int64_t incx, const void* y, int64_t incy, bool conjugate,
         void* result, dtype t, std::string* why) {
  return with_float_type(t, "dot", why, [&](auto tag) {
    using T = decltype(tag);
    T sum(0);
    for (int64_t i = 0; i < n; ++i) {
      sum += conj_if(to<T>(load(x, vidx(i, n, incx), t)), conjugate) *
             to<T>(load(y, vidx(i, n, incy), t));
    }
    store(result, 0, t, widen(sum));
    return true;
  });
}

bool scal(int64_t n, scalar alpha, void* x, int64_t incx, dtype t, std::string* why) {
  return with_float_type(t, "scal", why, [&](auto tag) {
    using T = decltype(tag);
    const T a = to<T>(alpha);
    if (n <= 0 || incx <= 0) return true;
    // Multiplied even when alpha is 0, as BLAS does: NaN and inf stay NaN.
    for (int64_t i = 0; i < n; ++i) store(x, i * incx, t, widen(a * to<T>(load(x, i * incx, t))));
    return true;
  });
}

bool copy(int64_t n, const void* x, int64_t incx, void* y, int64_t incy, dtype t,
          std::string* why) {
  const std::size_t size = element_size(t);
  if (size == 0) return fail(why, "copy: unknown element type");
  // Byte copies: no conversion, so NaN payloads and integers survive.
  const auto* src = static_cast<const unsigned char*>(x);
  auto* dst = static_cast<unsigned char*>(y);
  for (int64_t i = 0; i < n; ++i) {
    std::memcpy(dst + vidx(i, n, incy) * int64_t(size), src + vidx(i, n, incx) * int64_t(size),
                size);
  }
  return true;
}

bool nrm2(int64_t n, const void* x, int64_t incx, void* result, dtype t, std::string* why) {
  return with_float_type(t, "nrm2", why, [&](auto) {
    // Scaled sum of squares: no square is formed of a value larger than the
    // running scale, so the norm of large (or tiny) values neither overflows
    // nor underflows. NaN propagates, inf gives inf.
    double scale = 0.0;
    double ssq = 1.0;
    auto add = [&](double v) {
      if (v == 0.0) return;
      const double a = std::fabs(v);
      if (scale < a) {
        ssq = 1.0 + ssq * (scale / a) * (scale / a);
        scale = a;
      } else {
        ssq += (a / scale) * (a / scale);
      }
    };
    if (n > 0 && incx > 0) {
      for (int64_t i = 0; i < n; ++i) {
        const std::complex<double> v = load(x, i * incx, t);
        add(v.real());
        add(v.imag());
      }
    }
    store_real(result, t, scale * std::sqrt(ssq));
    return true;
  });
}

bool asum(int64_t n, const void* x, int64_t incx, void* result, dtype t, std::string* why) {
  return with_float_type(t, "asum", why, [&](auto tag) {
    using T = decltype(tag);
    decltype(abs1(T{})) sum = 0;  // accumulated in the real type of t
    if (n > 0 && incx > 0) {
      for (int64_t i = 0; i < n; ++i) sum += abs1(to<T>(load(x, i * incx, t)));
    }
    store_real(result, t, static_cast<double>(sum));
    return true;
  });
}

bool iamax(int64_t n, const void* x, int64_t incx, int32_t* result, dtype t, std::string* why) {
  return with_float_type(t, "iamax", why, [&](auto tag) {
    using T = decltype(tag);
    *result = 0;
    if (n <= 0 || incx <= 0) return true;
    auto best = abs1(to<T>(load(x, 0, t)));
    *result = 1;
    for (int64_t i = 1; i < n; ++i) {
      const auto v = abs1(to<T>(load(x, i * incx, t)));
      if (v > best) {  // strictly greater: the first of equal maxima wins
        best = v;
        *result = static_cast<int32_t>(i + 1);
      }
    }
    return true;
  });
}

}  // namespace vgpu::host::reference::blas
