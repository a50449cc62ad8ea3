// The reference executor's CPU BLAS against straightforward loops written
// here and against small cases worked by hand.
#include <cmath>
#include <complex>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include <gtest/gtest.h>

#include "actors/executor/reference/blas/blas_internal.h"
#include "actors/executor/reference/blas/ref_blas.h"

namespace blas = vgpu::host::reference::blas;
using blas::dtype;
using blas::op;
using cd = std::complex<double>;
using cf = std::complex<float>;

namespace {

const double kNaN = std::numeric_limits<double>::quiet_NaN();

// Typed storage for a dtype, filled and read through the test's own
// encodings (only the half conversions, tested separately, are shared).
struct buf {
  dtype t;
  std::vector<unsigned char> bytes;
  buf(dtype type, int64_t n) : t(type), bytes(static_cast<size_t>(n) * blas::element_size(type)) {}
  void* data() { return bytes.data(); }
  const void* data() const { return bytes.data(); }
  template <class E>
  void put(int64_t i, E e) { std::memcpy(bytes.data() + i * int64_t(sizeof e), &e, sizeof e); }
  template <class E>
  E get_as(int64_t i) const {
    E e;
    std::memcpy(&e, bytes.data() + i * int64_t(sizeof e), sizeof e);
    return e;
  }
  void set(int64_t i, cd v) {
    switch (t) {
      case dtype::f16: put(i, blas::float_to_half(float(v.real()))); break;
      case dtype::bf16: put(i, blas::float_to_bf16(float(v.real()))); break;
      case dtype::f32: put(i, float(v.real())); break;
      case dtype::f64: put(i, v.real()); break;
      case dtype::c32: put(i, cf(float(v.real()), float(v.imag()))); break;
      case dtype::c64: put(i, v); break;
      case dtype::i8: put(i, int8_t(v.real())); break;
      case dtype::i32: put(i, int32_t(v.real())); break;
    }
  }
  cd get(int64_t i) const {
    switch (t) {
      case dtype::f16: return blas::half_to_float(get_as<uint16_t>(i));
      case dtype::bf16: return blas::bf16_to_float(get_as<uint16_t>(i));
      case dtype::f32: return get_as<float>(i);
      case dtype::f64: return get_as<double>(i);
      case dtype::c32: return cd(get_as<cf>(i));
      case dtype::c64: return get_as<cd>(i);
      case dtype::i8: return double(get_as<int8_t>(i));
      case dtype::i32: return double(get_as<int32_t>(i));
    }
    return 0.0;
  }
};

// Small integers (and Gaussian-integer complex values): every product and
// sum below is exact in each type, so results compare exactly.
void fill_ints(buf& b, std::mt19937& rng, int lo, int hi) {
  std::uniform_int_distribution<int> d(lo, hi);
  const bool cplx = b.t == dtype::c32 || b.t == dtype::c64;
  const int64_t n = int64_t(b.bytes.size() / blas::element_size(b.t));
  for (int64_t i = 0; i < n; ++i) b.set(i, cd(d(rng), cplx ? d(rng) : 0));
}

cd op_elem(const buf& x, int64_t base, int64_t ld, op o, int64_t r, int64_t c) {
  const cd v = o == op::n ? x.get(base + r + c * ld) : x.get(base + c + r * ld);
  return o == op::c ? std::conj(v) : v;
}

struct gemm_case {
  dtype ab, c, compute;
};

// gemm over every op pair, padded leading dimensions and a batch of 2 with
// gaps between members, against the triple loop.
void check_gemm(const gemm_case& g, cd alpha, cd beta, int lo, int hi) {
  std::mt19937 rng(7);
  const int64_t m = 5, n = 4, k = 3, batch = 2;
  const op ops[] = {op::n, op::t, op::c};
  for (op ta : ops) {
    for (op tb : ops) {
      const int64_t lda = (ta == op::n ? m : k) + 2, ldb = (tb == op::n ? k : n) + 1, ldc = m + 3;
      const int64_t sa = lda * (ta == op::n ? k : m) + 5, sb = ldb * (tb == op::n ? n : k) + 3,
                    sc = ldc * n + 4;
      buf a(g.ab, sa * batch), b(g.ab, sb * batch), c(g.c, sc * batch);
      fill_ints(a, rng, lo, hi);
      fill_ints(b, rng, lo, hi);
      fill_ints(c, rng, lo, hi);
      const buf c0 = c;
      std::string why;
      ASSERT_TRUE(blas::gemm(ta, tb, m, n, k, alpha, {a.data(), g.ab, lda, sa},
                             {b.data(), g.ab, ldb, sb}, beta, {c.data(), g.c, ldc, sc},
                             g.compute, batch, &why))
          << why;
      for (int64_t q = 0; q < batch; ++q) {
        for (int64_t j = 0; j < n; ++j) {
          for (int64_t i = 0; i < m; ++i) {
            cd sum = 0;
            for (int64_t p = 0; p < k; ++p)
              sum += op_elem(a, q * sa, lda, ta, i, p) * op_elem(b, q * sb, ldb, tb, p, j);
            const int64_t at = q * sc + i + j * ldc;
            const cd want = alpha * sum + beta * c0.get(at);
            EXPECT_EQ(c.get(at), want) << "ta " << int(ta) << " tb " << int(tb) << " batch " << q
                                       << " (" << i << "," << j << ")";
          }
        }
        // Padding rows between columns are not written.
        for (int64_t j = 0; j < n; ++j)
          for (int64_t i = m; i < ldc; ++i)
            EXPECT_EQ(c.get(q * sc + i + j * ldc), c0.get(q * sc + i + j * ldc));
      }
    }
  }
}

}  // namespace

// --- conversions ---------------------------------------------------------------

TEST(RefBlasConvert, HalfKnownValues) {
  EXPECT_EQ(blas::float_to_half(1.0f), 0x3c00);
  EXPECT_EQ(blas::float_to_half(-2.0f), 0xc000);
  EXPECT_EQ(blas::float_to_half(65504.0f), 0x7bff);  // largest finite
  EXPECT_EQ(blas::float_to_half(65519.0f), 0x7bff);  // below the halfway point
  EXPECT_EQ(blas::float_to_half(65520.0f), 0x7c00);  // halfway to 2^16: even is inf
  EXPECT_EQ(blas::float_to_half(1e10f), 0x7c00);
  EXPECT_EQ(blas::float_to_half(-std::numeric_limits<float>::infinity()), 0xfc00);
  EXPECT_EQ(blas::float_to_half(-0.0f), 0x8000);
  // Ties to even in the normal range: 1 + 2^-11 -> 1, 1 + 3 * 2^-11 -> 1 + 2^-9.
  EXPECT_EQ(blas::float_to_half(1.0f + std::ldexp(1.0f, -11)), 0x3c00);
  EXPECT_EQ(blas::float_to_half(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);
  // Subnormals: 2^-24 is the smallest; 2^-25 ties to 0; a hair above rounds up;
  // 1.5 units ties to 2; the largest subnormal rounds up into the normals.
  EXPECT_EQ(blas::float_to_half(std::ldexp(1.0f, -24)), 0x0001);
  EXPECT_EQ(blas::float_to_half(std::ldexp(1.0f, -25)), 0x0000);
  EXPECT_EQ(blas::float_to_half(std::ldexp(1.0f, -25) * 1.0001f), 0x0001);
  EXPECT_EQ(blas::float_to_half(-3 * std::ldexp(1.0f, -25)), 0x8002);
  EXPECT_EQ(blas::float_to_half(5 * std::ldexp(1.0f, -25)), 0x0002);  // 2.5 units: tie to 2
  EXPECT_EQ(blas::float_to_half(3 * std::ldexp(1.0f, -26)), 0x0001);  // 0.75 units
  EXPECT_EQ(blas::float_to_half(std::ldexp(1023.75f, -24)), 0x0400);
  EXPECT_EQ(blas::float_to_half(std::ldexp(1.0f, -40)), 0x0000);
  const uint16_t nan = blas::float_to_half(std::numeric_limits<float>::quiet_NaN());
  EXPECT_EQ(nan & 0x7c00, 0x7c00);
  EXPECT_NE(nan & 0x03ff, 0);
  // A signalling NaN whose payload lies only in the low bits stays a NaN.
  float snan;
  const uint32_t snan_bits = 0x7f800001u;
  std::memcpy(&snan, &snan_bits, sizeof snan);
  EXPECT_NE(blas::float_to_half(snan) & 0x03ff, 0);

  EXPECT_EQ(blas::half_to_float(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(blas::half_to_float(0x83ff), -std::ldexp(1023.0f, -24));
  EXPECT_EQ(blas::half_to_float(0x7bff), 65504.0f);
  EXPECT_TRUE(std::isinf(blas::half_to_float(0x7c00)));
  EXPECT_TRUE(std::isnan(blas::half_to_float(0x7e00)));
  EXPECT_TRUE(std::signbit(blas::half_to_float(0x8000)));
}

TEST(RefBlasConvert, HalfAndBf16RoundTripEveryPattern) {
  for (uint32_t h = 0; h <= 0xffff; ++h) {
    const float f = blas::half_to_float(uint16_t(h));
    const float g = blas::bf16_to_float(uint16_t(h));
    if (std::isnan(f)) {
      EXPECT_TRUE(std::isnan(blas::half_to_float(blas::float_to_half(f)))) << h;
    } else {
      EXPECT_EQ(blas::float_to_half(f), h) << h;
    }
    if (std::isnan(g)) {
      EXPECT_TRUE(std::isnan(blas::bf16_to_float(blas::float_to_bf16(g)))) << h;
    } else {
      EXPECT_EQ(blas::float_to_bf16(g), h) << h;
    }
  }
}

TEST(RefBlasConvert, Bf16Rounding) {
  EXPECT_EQ(blas::float_to_bf16(1.0f), 0x3f80);
  EXPECT_EQ(blas::float_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3f80);      // tie to even
  EXPECT_EQ(blas::float_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3f82);  // tie up to even
  EXPECT_EQ(blas::float_to_bf16(std::numeric_limits<float>::max()), 0x7f80);
  EXPECT_TRUE(std::isnan(blas::bf16_to_float(blas::float_to_bf16(std::nanf("")))));
}

// --- gemm ----------------------------------------------------------------------

TEST(RefBlasGemm, F32AndF64AllOps) {
  check_gemm({dtype::f32, dtype::f32, dtype::f32}, 2.0, -1.0, -4, 4);
  check_gemm({dtype::f64, dtype::f64, dtype::f64}, -3.0, 0.5, -9, 9);
  check_gemm({dtype::f32, dtype::f64, dtype::f64}, 1.0, 1.0, -9, 9);
}

TEST(RefBlasGemm, ComplexConjugateTranspose) {
  check_gemm({dtype::c32, dtype::c32, dtype::c32}, cd(1, 2), cd(0, -1), -3, 3);
  check_gemm({dtype::c32, dtype::c32, dtype::f32}, cd(2, 0), cd(1, 1), -3, 3);  // COMPUTE_32F
  check_gemm({dtype::c64, dtype::c64, dtype::c64}, cd(-1, 1), cd(2, 0), -5, 5);
}

TEST(RefBlasGemm, NarrowFloatsAndMixedOutput) {
  check_gemm({dtype::f16, dtype::f16, dtype::f32}, 1.0, 2.0, -8, 8);
  check_gemm({dtype::f16, dtype::f32, dtype::f32}, 0.5, 1.0, -8, 8);
  check_gemm({dtype::f16, dtype::f16, dtype::f16}, 1.0, 0.0, -8, 8);  // Hgemm
  check_gemm({dtype::bf16, dtype::bf16, dtype::f32}, 1.0, -1.0, -8, 8);
  check_gemm({dtype::bf16, dtype::f32, dtype::f32}, 1.0, 1.0, -8, 8);
}

TEST(RefBlasGemm, Int8ToInt32) {
  check_gemm({dtype::i8, dtype::i32, dtype::i32}, 1.0, 1.0, -128, 127);
  check_gemm({dtype::i8, dtype::f32, dtype::f32}, 1.0, 0.0, -128, 127);
}

TEST(RefBlasGemm, F16InF32ComputeRoundsOnce) {
  // 2049 = 2048 + 1 is not a half; the f32 sum is exact and rounds once to
  // 2048 (tie to even). Half accumulation would also give 2048; the f32 out
  // variant must keep 2049.
  buf a(dtype::f16, 2), b(dtype::f16, 2), c16(dtype::f16, 1), c32(dtype::f32, 1);
  a.set(0, 2048.0);
  a.set(1, 1.0);
  b.set(0, 1.0);
  b.set(1, 1.0);
  std::string why;
  ASSERT_TRUE(blas::gemm(op::n, op::n, 1, 1, 2, 1.0, {a.data(), dtype::f16, 1, 0},
                         {b.data(), dtype::f16, 2, 0}, 0.0, {c32.data(), dtype::f32, 1, 0},
                         dtype::f32, 1, &why))
      << why;
  EXPECT_EQ(c32.get(0), cd(2049.0));
  ASSERT_TRUE(blas::gemm(op::n, op::n, 1, 1, 2, 1.0, {a.data(), dtype::f16, 1, 0},
                         {b.data(), dtype::f16, 2, 0}, 0.0, {c16.data(), dtype::f16, 1, 0},
                         dtype::f32, 1, &why))
      << why;
  EXPECT_EQ(c16.get(0), cd(2048.0));
}

TEST(RefBlasGemm, BetaZeroDoesNotReadC) {
  const int64_t m = 2, n = 2, k = 2;
  std::vector<float> a = {1, 2, 3, 4}, b = {1, 0, 0, 1}, c(4, float(kNaN));
  std::string why;
  ASSERT_TRUE(blas::gemm(op::n, op::n, m, n, k, 1.0, {a.data(), dtype::f32, 2, 0},
                         {b.data(), dtype::f32, 2, 0}, 0.0, {c.data(), dtype::f32, 2, 0},
                         dtype::f32, 1, &why));
  EXPECT_EQ(c, a);
  // beta != 0 does read C: the NaN comes through (the test above can fail).
  std::vector<float> c2(4, float(kNaN));
  ASSERT_TRUE(blas::gemm(op::n, op::n, m, n, k, 1.0, {a.data(), dtype::f32, 2, 0},
                         {b.data(), dtype::f32, 2, 0}, 1.0, {c2.data(), dtype::f32, 2, 0},
                         dtype::f32, 1, &why));
  EXPECT_TRUE(std::isnan(c2[0]));
  // alpha == 0 reads neither A nor B.
  std::vector<float> nan_a(4, float(kNaN)), c3 = {1, 2, 3, 4};
  ASSERT_TRUE(blas::gemm(op::n, op::n, m, n, k, 0.0, {nan_a.data(), dtype::f32, 2, 0},
                         {nan_a.data(), dtype::f32, 2, 0}, 2.0, {c3.data(), dtype::f32, 2, 0},
                         dtype::f32, 1, &why));
  EXPECT_EQ(c3, (std::vector<float>{2, 4, 6, 8}));
}

TEST(RefBlasGemm, RejectsBadArguments) {
  std::vector<float> x(64);
  const blas::matrix a{x.data(), dtype::f32, 4, 0};
  const blas::out_matrix c{x.data(), dtype::f32, 4, 0};
  std::string why;
  EXPECT_FALSE(blas::gemm(op::n, op::n, -1, 2, 2, 1.0, a, a, 0.0, c, dtype::f32, 1, &why));
  EXPECT_FALSE(why.empty());
  EXPECT_FALSE(blas::gemm(op::n, op::n, 5, 2, 2, 1.0, a, a, 0.0, c, dtype::f32, 1, &why));  // lda
  EXPECT_FALSE(blas::gemm(op::t, op::n, 2, 2, 5, 1.0, a, a, 0.0, c, dtype::f32, 1, &why));  // lda (k)
  EXPECT_FALSE(blas::gemm(op::n, op::n, 2, 2, 2, 1.0, a, a, 0.0, c, dtype::f32, -1, &why));
  const blas::matrix a16{x.data(), dtype::f16, 4, 0};
  const blas::out_matrix ci{x.data(), dtype::i32, 4, 0};
  EXPECT_FALSE(blas::gemm(op::n, op::n, 2, 2, 2, 1.0, a16, a16, 0.0, ci, dtype::f32, 1, &why));
  EXPECT_FALSE(blas::gemm(op::n, op::n, 2, 2, 2, 1.0, a16, a, 0.0, c, dtype::f32, 1, &why));
  EXPECT_FALSE(blas::gemm(op::n, op::n, 2, 2, 2, 1.0, a, a, 0.0, c, dtype::i32, 1, &why));
  // m == 0: valid, nothing touched.
  EXPECT_TRUE(blas::gemm(op::n, op::n, 0, 2, 2, 1.0, a, a, 0.0, c, dtype::f32, 1, &why));
}

// --- level 2 and 1 -----------------------------------------------------------------

TEST(RefBlasLevel2, GemvNegativeIncrementsAllOps) {
  std::mt19937 rng(3);
  const int64_t m = 4, n = 3, lda = 6;
  for (op o : {op::n, op::t, op::c}) {
    for (int64_t incx : {2, -1, -3}) {
      for (int64_t incy : {1, -2}) {
        const int64_t lx = o == op::n ? n : m, ly = o == op::n ? m : n;
        buf a(dtype::c64, lda * n), x(dtype::c64, lx * 3), y(dtype::c64, ly * 2);
        fill_ints(a, rng, -3, 3);
        fill_ints(x, rng, -3, 3);
        fill_ints(y, rng, -3, 3);
        const buf y0 = y;
        const cd alpha(1, -1), beta(2, 1);
        std::string why;
        ASSERT_TRUE(blas::gemv(o, m, n, alpha, a.data(), lda, x.data(), incx, beta, y.data(),
                               incy, dtype::c64, &why))
            << why;
        auto pos = [](int64_t i, int64_t len, int64_t inc) {
          return inc > 0 ? i * inc : (len - 1 - i) * -inc;
        };
        for (int64_t i = 0; i < ly; ++i) {
          cd sum = 0;
          for (int64_t j = 0; j < lx; ++j) sum += op_elem(a, 0, lda, o, i, j) * x.get(pos(j, lx, incx));
          EXPECT_EQ(y.get(pos(i, ly, incy)), alpha * sum + beta * y0.get(pos(i, ly, incy)))
              << int(o) << " " << incx << " " << incy << " " << i;
        }
      }
    }
  }
  std::vector<double> a(4, 1.0), x(2, 1.0), y(2, kNaN);
  std::string why;
  ASSERT_TRUE(blas::gemv(op::n, 2, 2, 1.0, a.data(), 2, x.data(), 1, 0.0, y.data(), 1,
                         dtype::f64, &why));
  EXPECT_EQ(y, (std::vector<double>{2, 2}));  // beta == 0: NaN in y not read
  EXPECT_FALSE(blas::gemv(op::n, 2, 2, 1.0, a.data(), 1, x.data(), 1, 0.0, y.data(), 1,
                          dtype::f64, &why));
  EXPECT_FALSE(blas::gemv(op::n, 2, 2, 1.0, a.data(), 2, x.data(), 0, 0.0, y.data(), 1,
                          dtype::f64, &why));
}

TEST(RefBlasLevel1, AxpyDotCopyNegativeIncrements) {
  std::string why;
  // x read backwards: x = {1, 2, 3} stored with incx -1 is the vector (3, 2, 1).
  std::vector<float> x = {1, 2, 3}, y = {10, 20, 30, 40, 50, 60};
  ASSERT_TRUE(blas::axpy(3, 2.0, x.data(), -1, y.data(), 2, dtype::f32, &why));
  EXPECT_EQ(y, (std::vector<float>{16, 20, 34, 40, 52, 60}));
  std::vector<float> z(3);
  ASSERT_TRUE(blas::copy(3, x.data(), 1, z.data(), -1, dtype::f32, &why));
  EXPECT_EQ(z, (std::vector<float>{3, 2, 1}));
  float d = 0;
  ASSERT_TRUE(blas::dot(3, x.data(), 1, z.data(), -1, false, &d, dtype::f32, &why));
  EXPECT_EQ(d, 1 * 1 + 2 * 2 + 3 * 3);

  std::vector<cd> u = {{1, 2}, {3, -1}}, v = {{2, 1}, {0, 1}};
  cd r;
  ASSERT_TRUE(blas::dot(2, u.data(), 1, v.data(), 1, false, &r, dtype::c64, &why));
  EXPECT_EQ(r, u[0] * v[0] + u[1] * v[1]);
  ASSERT_TRUE(blas::dot(2, u.data(), 1, v.data(), 1, true, &r, dtype::c64, &why));
  EXPECT_EQ(r, std::conj(u[0]) * v[0] + std::conj(u[1]) * v[1]);
  EXPECT_NE(r, u[0] * v[0] + u[1] * v[1]);

  std::vector<int32_t> ints(4);
  EXPECT_FALSE(blas::axpy(2, 1.0, ints.data(), 1, ints.data(), 1, dtype::i32, &why));
  EXPECT_FALSE(why.empty());
}

TEST(RefBlasLevel1, HalfAxpyComputesInFloat) {
  std::vector<uint16_t> x = {blas::float_to_half(1.5f)}, y = {blas::float_to_half(-0.25f)};
  std::string why;
  ASSERT_TRUE(blas::axpy(1, 2.0, x.data(), 1, y.data(), 1, dtype::f16, &why));
  EXPECT_EQ(blas::half_to_float(y[0]), 2.75f);
}

TEST(RefBlasLevel1, IamaxUsesAbs1AndIsOneBased) {
  // |(3,3)| = 4.24 < 5 = |(5,0)|, but |re|+|im| is 6 > 5: BLAS picks (3,3).
  std::vector<cf> x = {{1, 0}, {5, 0}, {3, -3}, {-3, 3}};
  int32_t idx = -1;
  std::string why;
  ASSERT_TRUE(blas::iamax(4, x.data(), 1, &idx, dtype::c32, &why));
  EXPECT_EQ(idx, 3);  // first of the two equal maxima, 1-based
  ASSERT_TRUE(blas::iamax(2, x.data(), 2, &idx, dtype::c32, &why));  // (1,0), (3,-3)
  EXPECT_EQ(idx, 2);
  ASSERT_TRUE(blas::iamax(0, x.data(), 1, &idx, dtype::c32, &why));
  EXPECT_EQ(idx, 0);
  std::vector<double> y = {-7, 2, 7};
  ASSERT_TRUE(blas::iamax(3, y.data(), 1, &idx, dtype::f64, &why));
  EXPECT_EQ(idx, 1);
}

TEST(RefBlasLevel1, Nrm2WithoutOverflowAsumScal) {
  std::string why;
  std::vector<double> big = {3e300, 4e300};
  double r = 0;
  ASSERT_TRUE(blas::nrm2(2, big.data(), 1, &r, dtype::f64, &why));
  EXPECT_DOUBLE_EQ(r, 5e300);
  std::vector<double> tiny = {3e-300, 4e-300};
  ASSERT_TRUE(blas::nrm2(2, tiny.data(), 1, &r, dtype::f64, &why));
  EXPECT_DOUBLE_EQ(r, 5e-300);
  std::vector<cf> c = {{3e30f, 4e30f}, {0, 0}};
  float rf = 0;
  ASSERT_TRUE(blas::nrm2(2, c.data(), 1, &rf, dtype::c32, &why));
  EXPECT_FLOAT_EQ(rf, 5e30f);
  ASSERT_TRUE(blas::asum(2, c.data(), 1, &rf, dtype::c32, &why));
  EXPECT_FLOAT_EQ(rf, 7e30f);
  std::vector<double> v = {1, -2, 3, -4};
  ASSERT_TRUE(blas::asum(2, v.data(), 2, &r, dtype::f64, &why));
  EXPECT_EQ(r, 4.0);
  ASSERT_TRUE(blas::scal(2, -2.0, v.data(), 3, dtype::f64, &why));
  EXPECT_EQ(v, (std::vector<double>{-2, -2, 3, 8}));
  std::vector<double> nan = {1, kNaN};
  ASSERT_TRUE(blas::nrm2(2, nan.data(), 1, &r, dtype::f64, &why));
  EXPECT_TRUE(std::isnan(r));
}

// --- trsm ------------------------------------------------------------------------

// Every side/uplo/trans/diag: solve, then multiply the answer back with the
// triangle as a loop here reads it. The triangle not named, and a unit
// diagonal, hold NaN: reading them would show.
template <class T>
void check_trsm(dtype t) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<double> d(-1, 1);
  const int64_t m = 4, n = 3, ldb = 6;
  const T alpha = blas::to<T>(cd(1.5, -0.5));
  for (auto s : {blas::side::left, blas::side::right}) {
    for (auto uplo : {blas::fill::lower, blas::fill::upper}) {
      for (op o : {op::n, op::t, op::c}) {
        for (auto dg : {blas::diag::non_unit, blas::diag::unit}) {
          const int64_t k = s == blas::side::left ? m : n, lda = k + 1;
          std::vector<T> a(size_t(lda * k)), b(size_t(ldb * n));
          for (int64_t c = 0; c < k; ++c) {
            for (int64_t r = 0; r < k; ++r) {
              const bool in = uplo == blas::fill::lower ? r >= c : r <= c;
              T v = blas::to<T>(cd(d(rng), d(rng)));
              if (r == c) v += T(4);  // well conditioned
              if (!in || (r == c && dg == blas::diag::unit)) v = T(kNaN);
              a[size_t(r + c * lda)] = v;
            }
          }
          for (auto& e : b) e = blas::to<T>(cd(d(rng), d(rng)));
          const std::vector<T> b0 = b;
          std::string why;
          ASSERT_TRUE(blas::trsm(s, uplo, o, dg, m, n, blas::widen(alpha), a.data(), lda, b.data(),
                                 ldb, t, &why))
              << why;
          auto tri = [&](int64_t r, int64_t c) {  // A as the triangle defines it
            if (r == c && dg == blas::diag::unit) return T(1);
            const bool in = uplo == blas::fill::lower ? r >= c : r <= c;
            return in ? a[size_t(r + c * lda)] : T(0);
          };
          auto opa = [&](int64_t r, int64_t c) {
            if (o == op::n) return tri(r, c);
            return blas::conj_if(tri(c, r), o == op::c);
          };
          for (int64_t j = 0; j < n; ++j) {
            for (int64_t i = 0; i < m; ++i) {
              T sum(0);
              if (s == blas::side::left) {
                for (int64_t p = 0; p < m; ++p) sum += opa(i, p) * b[size_t(p + j * ldb)];
              } else {
                for (int64_t p = 0; p < n; ++p) sum += b[size_t(i + p * ldb)] * opa(p, j);
              }
              EXPECT_LT(std::abs(sum - alpha * b0[size_t(i + j * ldb)]), 1e-4)
                  << int(s) << int(uplo) << int(o) << int(dg) << " (" << i << "," << j << ")";
            }
          }
          for (int64_t j = 0; j < n; ++j)  // padding untouched
            for (int64_t i = m; i < ldb; ++i) EXPECT_EQ(b[size_t(i + j * ldb)], b0[size_t(i + j * ldb)]);
        }
      }
    }
  }
}

TEST(RefBlasTrsm, AllSidesTrianglesAndOps) {
  check_trsm<double>(dtype::f64);
  check_trsm<float>(dtype::f32);
  check_trsm<cd>(dtype::c64);
  check_trsm<cf>(dtype::c32);
}

TEST(RefBlasTrsm, KnownLowerSolveAndBadArguments) {
  // [2 0; 1 4] x = [4; 10] -> x = [2; 2]
  std::vector<double> a = {2, 1, 99, 4}, b = {4, 10};
  std::string why;
  ASSERT_TRUE(blas::trsm(blas::side::left, blas::fill::lower, op::n, blas::diag::non_unit, 2, 1,
                         1.0, a.data(), 2, b.data(), 2, dtype::f64, &why));
  EXPECT_EQ(b, (std::vector<double>{2, 2}));
  EXPECT_FALSE(blas::trsm(blas::side::left, blas::fill::lower, op::n, blas::diag::non_unit, 2, 1,
                          1.0, a.data(), 1, b.data(), 2, dtype::f64, &why));
  EXPECT_FALSE(blas::trsm(blas::side::left, blas::fill::lower, op::n, blas::diag::non_unit, -1,
                          1, 1.0, a.data(), 2, b.data(), 2, dtype::f64, &why));
}

// --- LU --------------------------------------------------------------------------

TEST(RefBlasLu, ThreeByThreeWithPivotSwaps) {
  // A = [1 2 3; 4 5 6; 7 8 10] (column-major below). Worked by hand: row 3
  // pivots first, then row 3 again (6/7 > 3/7); U(3,3) = -1/2.
  std::vector<double> a = {1, 4, 7, 2, 5, 8, 3, 6, 10};
  int32_t piv[3] = {0, 0, 0};
  int32_t info = -1;
  std::string why;
  ASSERT_TRUE(blas::getrf(3, a.data(), 3, piv, &info, dtype::f64, &why)) << why;
  EXPECT_EQ(info, 0);
  EXPECT_EQ(piv[0], 3);
  EXPECT_EQ(piv[1], 3);
  EXPECT_EQ(piv[2], 3);
  const double want[9] = {7, 1.0 / 7, 4.0 / 7, 8, 6.0 / 7, 0.5, 10, 11.0 / 7, -0.5};
  for (int i = 0; i < 9; ++i) EXPECT_NEAR(a[size_t(i)], want[i], 1e-14) << i;

  // Solve A x = b and A^T x = b for x = (1, -2, 3).
  const std::vector<double> a0 = {1, 4, 7, 2, 5, 8, 3, 6, 10}, x = {1, -2, 3};
  for (op o : {op::n, op::t}) {
    std::vector<double> b(3, 0.0);
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) b[size_t(i)] += (o == op::n ? a0[size_t(i + 3 * j)] : a0[size_t(j + 3 * i)]) * x[size_t(j)];
    ASSERT_TRUE(blas::getrs(o, 3, 1, a.data(), 3, piv, b.data(), 3, &info, dtype::f64, &why));
    EXPECT_EQ(info, 0);
    for (int i = 0; i < 3; ++i) EXPECT_NEAR(b[size_t(i)], x[size_t(i)], 1e-12) << int(o) << i;
  }
}

TEST(RefBlasLu, ComplexSolveAllOpsSeveralRightHandSides) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<double> d(-1, 1);
  const int64_t n = 5, nrhs = 2, lda = 7, ldb = 6;
  std::vector<cd> a(size_t(lda * n));
  for (auto& e : a) e = cd(d(rng), d(rng));
  const std::vector<cd> a0 = a;
  std::vector<int32_t> piv(static_cast<size_t>(n));
  int32_t info = -1;
  std::string why;
  ASSERT_TRUE(blas::getrf(n, a.data(), lda, piv.data(), &info, dtype::c64, &why));
  EXPECT_EQ(info, 0);
  for (op o : {op::n, op::t, op::c}) {
    std::vector<cd> x(size_t(ldb * nrhs)), b(size_t(ldb * nrhs));
    for (auto& e : x) e = cd(d(rng), d(rng));
    for (int64_t q = 0; q < nrhs; ++q)
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < n; ++j) {
          cd aij = o == op::n ? a0[size_t(i + j * lda)] : a0[size_t(j + i * lda)];
          if (o == op::c) aij = std::conj(aij);
          b[size_t(i + q * ldb)] += aij * x[size_t(j + q * ldb)];
        }
    ASSERT_TRUE(blas::getrs(o, n, nrhs, a.data(), lda, piv.data(), b.data(), ldb, &info,
                            dtype::c64, &why));
    for (int64_t q = 0; q < nrhs; ++q)
      for (int64_t i = 0; i < n; ++i)
        EXPECT_LT(std::abs(b[size_t(i + q * ldb)] - x[size_t(i + q * ldb)]), 1e-10) << int(o);
  }
}

TEST(RefBlasLu, SingularNoPivotingAndBadArguments) {
  std::string why;
  int32_t info = 0;
  int32_t piv[2];
  std::vector<float> s = {1, 2, 2, 4};  // rank 1: U(2,2) == 0
  ASSERT_TRUE(blas::getrf(2, s.data(), 2, piv, &info, dtype::f32, &why));
  EXPECT_EQ(info, 2);
  std::vector<float> z = {0, 0, 1, 2};  // zero first column
  ASSERT_TRUE(blas::getrf(2, z.data(), 2, piv, &info, dtype::f32, &why));
  EXPECT_EQ(info, 1);
  EXPECT_EQ(piv[0], 1);

  // No pivoting: [1 2; 3 4] = [1 0; 3 1] [1 2; 0 -2] although 3 > 1.
  std::vector<double> a = {1, 3, 2, 4};
  ASSERT_TRUE(blas::getrf(2, a.data(), 2, nullptr, &info, dtype::f64, &why));
  EXPECT_EQ(info, 0);
  EXPECT_EQ(a, (std::vector<double>{1, 3, 2, -2}));
  std::vector<double> b = {5, 11};  // x = (1, 2)
  ASSERT_TRUE(blas::getrs(op::n, 2, 1, a.data(), 2, nullptr, b.data(), 2, &info, dtype::f64, &why));
  EXPECT_EQ(b, (std::vector<double>{1, 2}));

  EXPECT_FALSE(blas::getrf(2, a.data(), 1, piv, &info, dtype::f64, &why));
  EXPECT_EQ(info, -3);
  EXPECT_FALSE(blas::getrs(op::n, -1, 1, a.data(), 2, nullptr, b.data(), 2, &info, dtype::f64, &why));
  EXPECT_EQ(info, -2);
  EXPECT_FALSE(blas::getrs(op::n, 2, 1, a.data(), 2, nullptr, b.data(), 1, &info, dtype::f64, &why));
  EXPECT_EQ(info, -8);
  EXPECT_FALSE(blas::getrf(2, a.data(), 2, piv, &info, dtype::i32, &why));
}
