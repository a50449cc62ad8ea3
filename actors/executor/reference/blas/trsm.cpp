// cublas?trsm: triangular solve with many right-hand sides, either side.
#include <algorithm>
#include <vector>

#include "actors/executor/reference/blas/blas_internal.h"

namespace vgpu::host::reference::blas {

namespace {

// Solves M x = x in place for a k x k column-major triangular M.
template <class T>
void solve(const std::vector<T>& mat, int64_t k, bool lower, T* x) {
  auto at = [&](int64_t r, int64_t c) { return mat[static_cast<size_t>(r + c * k)]; };
  if (lower) {
    for (int64_t i = 0; i < k; ++i) {
      T s = x[i];
      for (int64_t p = 0; p < i; ++p) s -= at(i, p) * x[p];
      x[i] = s / at(i, i);
    }
  } else {
    for (int64_t i = k - 1; i >= 0; --i) {
      T s = x[i];
      for (int64_t p = i + 1; p < k; ++p) s -= at(i, p) * x[p];
      x[i] = s / at(i, i);
    }
  }
}

}  // namespace

bool trsm(side s, fill uplo, op trans, diag d, int64_t m, int64_t n, scalar alpha,
          const void* a, int64_t lda, void* b, int64_t ldb, dtype t, std::string* why) {
  if (t == dtype::f16 || t == dtype::bf16) return fail(why, "trsm: half types not supported");
  if (m < 0 || n < 0) return fail(why, "trsm: negative m or n");
  const bool left = s == side::left;
  const int64_t k = left ? m : n;
  if (lda < std::max<int64_t>(1, k)) return fail(why, "trsm: lda smaller than A's order");
  if (ldb < std::max<int64_t>(1, m)) return fail(why, "trsm: ldb < max(1, m)");
  return with_float_type(t, "trsm", why, [&](auto tag) {
    using T = decltype(tag);
    if (m == 0 || n == 0) return true;
    const T al = to<T>(alpha);
    if (al == T(0)) {
      // BLAS: B = 0 without reading A or B.
      for (int64_t j = 0; j < n; ++j)
        for (int64_t i = 0; i < m; ++i) store(b, i + j * ldb, t, 0.0);
      return true;
    }
    // The matrix actually solved with, dense: op(A) for the left side, op(A)
    // transposed for the right (X op(A) = B is op(A)^T X^T = B^T). Only the
    // `uplo` triangle of A is read; a unit diagonal is not read at all.
    const bool transposed = (trans != op::n) != !left;
    const bool lower = (uplo == fill::lower) != transposed;
    std::vector<T> mat(static_cast<size_t>(k * k), T(0));
    for (int64_t c = 0; c < k; ++c) {
      for (int64_t r = 0; r < k; ++r) {
        const int64_t sr = transposed ? c : r;  // the element of A behind (r, c)
        const int64_t sc = transposed ? r : c;
        T v(0);
        if (sr == sc && d == diag::unit) {
          v = T(1);
        } else if (uplo == fill::lower ? sr >= sc : sr <= sc) {
          v = conj_if(to<T>(load(a, sr + sc * lda, t)), trans == op::c);
        }
        mat[static_cast<size_t>(r + c * k)] = v;
      }
    }
    // One right-hand side at a time: a column of B (left) or a row (right).
    const int64_t count = left ? n : m;
    std::vector<T> x(static_cast<size_t>(k));
    for (int64_t q = 0; q < count; ++q) {
      auto pos = [&](int64_t i) { return left ? i + q * ldb : q + i * ldb; };
      for (int64_t i = 0; i < k; ++i) x[size_t(i)] = al * to<T>(load(b, pos(i), t));
      solve(mat, k, lower, x.data());
      for (int64_t i = 0; i < k; ++i) store(b, pos(i), t, widen(x[size_t(i)]));
    }
    return true;
  });
}

}  // namespace vgpu::host::reference::blas
