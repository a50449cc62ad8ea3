// gemm (cublas?gemm, GemmEx, GemmStridedBatchedEx, the cuBLASLt matmul the
// executor maps onto it): type-combination check, then one loop nest in the
// computation's precision.
#include <algorithm>
#include <vector>

#include "actors/executor/reference/blas/blas_internal.h"

namespace vgpu::host::reference::blas {

namespace {

bool real_float(dtype t) {
  return t == dtype::f16 || t == dtype::bf16 || t == dtype::f32 || t == dtype::f64;
}

// The arithmetic type of a valid combination, or none.
enum class arith { none, f32, f64, c32, c64, i32 };

// cuBLAS's GemmEx table, plus f64 computation of the narrow float types (the
// reference may be more precise than the GPU, never less). f16 computation
// (Hgemm, CUBLAS_COMPUTE_16F) is done in f32 and rounded once at the end.
arith arith_of(dtype ab, dtype c, dtype compute) {
  switch (compute) {
    case dtype::f16:
      return ab == dtype::f16 && c == dtype::f16 ? arith::f32 : arith::none;
    case dtype::f32:
      if (ab == dtype::f16 || ab == dtype::bf16 || ab == dtype::f32)
        return c == ab || c == dtype::f32 ? arith::f32 : arith::none;
      if (ab == dtype::i8) return c == dtype::f32 ? arith::f32 : arith::none;
      // CUBLAS_COMPUTE_32F with complex data means complex float arithmetic.
      return ab == dtype::c32 && c == dtype::c32 ? arith::c32 : arith::none;
    case dtype::f64:
      if (real_float(ab))
        return c == ab || c == dtype::f32 || c == dtype::f64 ? arith::f64 : arith::none;
      return ab == dtype::c64 && c == dtype::c64 ? arith::c64 : arith::none;
    case dtype::c32: return ab == dtype::c32 && c == dtype::c32 ? arith::c32 : arith::none;
    case dtype::c64: return ab == dtype::c64 && c == dtype::c64 ? arith::c64 : arith::none;
    case dtype::i32: return ab == dtype::i8 && c == dtype::i32 ? arith::i32 : arith::none;
    default: return arith::none;
  }
}

// op(X) of one batch member, rows x cols, gathered as its transpose (element
// (r, c) at [c + r * cols]) so that the inner product runs over contiguous
// memory for A, and as itself for B.
template <class T>
void gather(std::vector<T>& out, const matrix& x, int64_t member, op o, int64_t rows,
            int64_t cols, bool row_major_out) {
  out.resize(static_cast<size_t>(rows * cols));
  const int64_t base = member * x.stride;
  const bool conjugate = o == op::c;
  for (int64_t c = 0; c < cols; ++c) {
    for (int64_t r = 0; r < rows; ++r) {
      const int64_t at = o == op::n ? r + c * x.ld : c + r * x.ld;
      const T v = conj_if(to<T>(load(x.ptr, base + at, x.type)), conjugate);
      out[static_cast<size_t>(row_major_out ? c + r * cols : r + c * rows)] = v;
    }
  }
}

template <class T>
bool run(op ta, op tb, int64_t m, int64_t n, int64_t k, scalar alpha, const matrix& a,
         const matrix& b, scalar beta, const out_matrix& c, int64_t batch) {
  const T al = to<T>(alpha);
  const T be = to<T>(beta);
  // alpha == 0 or k == 0: C = beta * C without reading A or B (BLAS).
  const bool product = al != T(0) && k > 0;
  std::vector<T> at;  // op(A) transposed: k contiguous elements per row of op(A)
  std::vector<T> bt;  // op(B): k contiguous elements per column
  for (int64_t member = 0; member < batch; ++member) {
    if (product) {
      gather(at, a, member, ta, m, k, true);
      gather(bt, b, member, tb, k, n, false);
    }
    const int64_t cbase = member * c.stride;
    for (int64_t j = 0; j < n; ++j) {
      for (int64_t i = 0; i < m; ++i) {
        T sum(0);
        if (product) {
          const T* ar = &at[static_cast<size_t>(i * k)];
          const T* bc = &bt[static_cast<size_t>(j * k)];
          for (int64_t p = 0; p < k; ++p) sum += ar[p] * bc[p];
        }
        const int64_t ci = cbase + i + j * c.ld;
        // beta == 0: C is not read, so NaN there does not propagate.
        const T v = be == T(0) ? al * sum : al * sum + be * to<T>(load(c.ptr, ci, c.type));
        if constexpr (std::is_same_v<T, int64_t>) {
          // i8 x i8 -> i32: the 32-bit accumulator of the GPU wraps.
          store(c.ptr, ci, c.type, static_cast<double>(static_cast<int32_t>(static_cast<uint32_t>(v))));
        } else {
          store(c.ptr, ci, c.type, widen(v));
        }
      }
    }
  }
  return true;
}

}  // namespace

bool gemm(op ta, op tb, int64_t m, int64_t n, int64_t k, scalar alpha, const matrix& a,
          const matrix& b, scalar beta, const out_matrix& c, dtype compute, int64_t batch,
          std::string* why) {
  if (a.type != b.type) return fail(why, "gemm: A and B element types differ");
  const arith ar = arith_of(a.type, c.type, compute);
  if (ar == arith::none) {
    return fail(why, std::string("gemm: unsupported types A/B ") + dtype_name(a.type) + ", C " +
                         dtype_name(c.type) + ", compute " + dtype_name(compute));
  }
  if (m < 0 || n < 0 || k < 0) return fail(why, "gemm: negative m, n or k");
  if (batch < 0) return fail(why, "gemm: negative batch count");
  const int64_t arows = ta == op::n ? m : k;
  const int64_t brows = tb == op::n ? k : n;
  if (a.ld < std::max<int64_t>(1, arows)) return fail(why, "gemm: lda smaller than A's rows");
  if (b.ld < std::max<int64_t>(1, brows)) return fail(why, "gemm: ldb smaller than B's rows");
  if (c.ld < std::max<int64_t>(1, m)) return fail(why, "gemm: ldc < max(1, m)");
  if (m == 0 || n == 0 || batch == 0) return true;
  if (c.ptr == nullptr || (k > 0 && (a.ptr == nullptr || b.ptr == nullptr)))
    return fail(why, "gemm: null matrix pointer");
  switch (ar) {
    case arith::f32: return run<float>(ta, tb, m, n, k, alpha, a, b, beta, c, batch);
    case arith::f64: return run<double>(ta, tb, m, n, k, alpha, a, b, beta, c, batch);
    case arith::c32:
      return run<std::complex<float>>(ta, tb, m, n, k, alpha, a, b, beta, c, batch);
    case arith::c64:
      return run<std::complex<double>>(ta, tb, m, n, k, alpha, a, b, beta, c, batch);
    case arith::i32:
      // int64 accumulation, wrapped to 32 bits at the end: the same result as
      // a wrapping 32-bit accumulator, without signed-overflow UB.
      return run<int64_t>(ta, tb, m, n, k, alpha, a, b, beta, c, batch);
    case arith::none: break;
  }
  return false;
}

}  // namespace vgpu::host::reference::blas
