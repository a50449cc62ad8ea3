// LU factorization and solve: cublas?getrfBatched / getrsBatched for one
// batch member. The algorithm is LAPACK's unblocked getf2/getrs, so pivots
// and info are what LAPACK (and cuBLAS) report.
#include <algorithm>
#include <utility>
#include <vector>

#include "actors/executor/reference/blas/blas_internal.h"

namespace vgpu::host::reference::blas {

namespace {

bool half_type(dtype t) { return t == dtype::f16 || t == dtype::bf16; }

template <class T>
std::vector<T> load_square(const void* a, int64_t n, int64_t lda, dtype t) {
  std::vector<T> m(static_cast<size_t>(n * n));
  for (int64_t c = 0; c < n; ++c)
    for (int64_t r = 0; r < n; ++r) m[size_t(r + c * n)] = to<T>(load(a, r + c * lda, t));
  return m;
}

}  // namespace

bool getrf(int64_t n, void* a, int64_t lda, int32_t* pivots, int32_t* info, dtype t,
           std::string* why) {
  // Argument numbers as cuBLAS counts them (handle not counted): n 1, lda 3.
  auto bad = [&](int32_t arg, const char* msg) {
    if (info != nullptr) *info = -arg;
    return fail(why, msg);
  };
  if (half_type(t)) return fail(why, "getrf: half types not supported");
  if (n < 0) return bad(1, "getrf: negative n");
  if (lda < std::max<int64_t>(1, n)) return bad(3, "getrf: lda < max(1, n)");
  if (info == nullptr) return fail(why, "getrf: null info");
  return with_float_type(t, "getrf", why, [&](auto tag) {
    using T = decltype(tag);
    *info = 0;
    if (n == 0) return true;
    std::vector<T> m = load_square<T>(a, n, lda, t);
    auto at = [&](int64_t r, int64_t c) -> T& { return m[size_t(r + c * n)]; };
    for (int64_t j = 0; j < n; ++j) {
      int64_t p = j;
      if (pivots != nullptr) {
        // The first row of largest |re|+|im| in column j, at or below j.
        for (int64_t i = j + 1; i < n; ++i)
          if (abs1(at(i, j)) > abs1(at(p, j))) p = i;
        pivots[j] = static_cast<int32_t>(p + 1);
      }
      if (at(p, j) != T(0)) {
        if (p != j)
          for (int64_t c = 0; c < n; ++c) std::swap(at(j, c), at(p, c));
        for (int64_t i = j + 1; i < n; ++i) at(i, j) /= at(j, j);
      } else if (*info == 0) {
        *info = static_cast<int32_t>(j + 1);  // singular: U(j,j) == 0; keep going, as LAPACK
      }
      for (int64_t c = j + 1; c < n; ++c)
        for (int64_t i = j + 1; i < n; ++i) at(i, c) -= at(i, j) * at(j, c);
    }
    for (int64_t c = 0; c < n; ++c)
      for (int64_t r = 0; r < n; ++r) store(a, r + c * lda, t, widen(at(r, c)));
    return true;
  });
}

bool getrs(op trans, int64_t n, int64_t nrhs, const void* a, int64_t lda, const int32_t* pivots,
           void* b, int64_t ldb, int32_t* info, dtype t, std::string* why) {
  // Argument numbers as cuBLAS counts them (handle not counted): trans 1,
  // n 2, nrhs 3, A 4, lda 5, pivots 6, B 7, ldb 8.
  auto bad = [&](int32_t arg, const char* msg) {
    if (info != nullptr) *info = -arg;
    return fail(why, msg);
  };
  if (half_type(t)) return fail(why, "getrs: half types not supported");
  if (n < 0) return bad(2, "getrs: negative n");
  if (nrhs < 0) return bad(3, "getrs: negative nrhs");
  if (lda < std::max<int64_t>(1, n)) return bad(5, "getrs: lda < max(1, n)");
  if (ldb < std::max<int64_t>(1, n)) return bad(8, "getrs: ldb < max(1, n)");
  if (pivots != nullptr) {
    for (int64_t i = 0; i < n; ++i)
      if (pivots[i] < 1 || pivots[i] > n) return bad(6, "getrs: pivot out of range");
  }
  return with_float_type(t, "getrs", why, [&](auto tag) {
    using T = decltype(tag);
    if (info != nullptr) *info = 0;
    if (n == 0 || nrhs == 0) return true;
    const std::vector<T> lu = load_square<T>(a, n, lda, t);
    auto at = [&](int64_t r, int64_t c) { return lu[size_t(r + c * n)]; };
    const bool conjugate = trans == op::c;
    auto swap_rows = [&](std::vector<T>& x, int64_t i) {
      if (pivots != nullptr) std::swap(x[size_t(i)], x[size_t(pivots[i] - 1)]);
    };
    std::vector<T> x(static_cast<size_t>(n));
    for (int64_t q = 0; q < nrhs; ++q) {
      for (int64_t i = 0; i < n; ++i) x[size_t(i)] = to<T>(load(b, i + q * ldb, t));
      if (trans == op::n) {
        // A = P L U: apply the interchanges, then L (unit lower), then U.
        for (int64_t i = 0; i < n; ++i) swap_rows(x, i);
        for (int64_t i = 0; i < n; ++i)
          for (int64_t p = 0; p < i; ++p) x[size_t(i)] -= at(i, p) * x[size_t(p)];
        for (int64_t i = n - 1; i >= 0; --i) {
          for (int64_t p = i + 1; p < n; ++p) x[size_t(i)] -= at(i, p) * x[size_t(p)];
          x[size_t(i)] /= at(i, i);
        }
      } else {
        // op(A) = U^T L^T P^T: U^T (lower), then L^T (unit upper), then the
        // interchanges in reverse order.
        for (int64_t i = 0; i < n; ++i) {
          for (int64_t p = 0; p < i; ++p)
            x[size_t(i)] -= conj_if(at(p, i), conjugate) * x[size_t(p)];
          x[size_t(i)] /= conj_if(at(i, i), conjugate);
        }
        for (int64_t i = n - 1; i >= 0; --i)
          for (int64_t p = i + 1; p < n; ++p)
            x[size_t(i)] -= conj_if(at(p, i), conjugate) * x[size_t(p)];
        for (int64_t i = n - 1; i >= 0; --i) swap_rows(x, i);
      }
      for (int64_t i = 0; i < n; ++i) store(b, i + q * ldb, t, widen(x[size_t(i)]));
    }
    return true;
  });
}

}  // namespace vgpu::host::reference::blas
