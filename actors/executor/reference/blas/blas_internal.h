// Shared helpers of the reference BLAS (not part of its interface): element
// conversions, vector indexing, the per-type dispatch and error reporting.
#pragma once

#include <complex>
#include <cstdint>
#include <string>
#include <type_traits>

#include "actors/executor/reference/blas/ref_blas.h"

namespace vgpu::host::reference::blas {

// IEEE binary16 and bfloat16 <-> float, round to nearest even, without CUDA's
// headers (the mediator must build on a machine without the toolkit's fp16).
float half_to_float(uint16_t h);
uint16_t float_to_half(float f);
float bf16_to_float(uint16_t b);
uint16_t float_to_bf16(float f);

// Element i (in elements from base) of type t, widened to complex<double>;
// exact for every dtype, so nothing is rounded before the computation's own
// precision is applied.
std::complex<double> load(const void* base, int64_t i, dtype t);
// Stores v into element i, rounding to t (the imaginary part is dropped for
// real types; integers round to nearest and saturate).
void store(void* base, int64_t i, dtype t, std::complex<double> v);

inline bool is_complex(dtype t) { return t == dtype::c32 || t == dtype::c64; }

// Position of the i-th of n elements with increment inc: BLAS starts a
// negative-increment vector at its far end.
inline int64_t vidx(int64_t i, int64_t n, int64_t inc) {
  return inc >= 0 ? i * inc : (n - 1 - i) * -inc;
}

template <class T>
struct is_cplx : std::false_type {};
template <class R>
struct is_cplx<std::complex<R>> : std::true_type {};

// complex<double> -> the computation type T (real part for real T).
template <class T>
T to(std::complex<double> v) {
  if constexpr (is_cplx<T>::value) {
    using R = typename T::value_type;
    return T(static_cast<R>(v.real()), static_cast<R>(v.imag()));
  } else {
    return static_cast<T>(v.real());
  }
}
template <class T>
std::complex<double> widen(T v) {
  if constexpr (is_cplx<T>::value) {
    return {static_cast<double>(v.real()), static_cast<double>(v.imag())};
  } else {
    return {static_cast<double>(v), 0.0};
  }
}
template <class T>
T conj_if(T v, bool conjugate) {
  if constexpr (is_cplx<T>::value) {
    return conjugate ? std::conj(v) : v;
  } else {
    (void)conjugate;
    return v;
  }
}
// |re| + |im|: BLAS's measure for iamax, asum and pivot choice.
template <class T>
auto abs1(T v) {
  if constexpr (is_cplx<T>::value) {
    return std::abs(v.real()) + std::abs(v.imag());
  } else {
    return std::abs(v);
  }
}

inline bool fail(std::string* why, std::string msg) {
  if (why != nullptr) *why = std::move(msg);
  return false;
}

const char* dtype_name(dtype t);

// Calls f(T{}) with T the arithmetic type of element type t for the
// floating-point BLAS routines: float for f16/bf16/f32 (as cuBLAS's *Ex
// routines compute them), double, complex<float>, complex<double>. Integer
// types are refused.
template <class F>
bool with_float_type(dtype t, const char* fn, std::string* why, F&& f) {
  switch (t) {
    case dtype::f16:
    case dtype::bf16:
    case dtype::f32: return f(float{});
    case dtype::f64: return f(double{});
    case dtype::c32: return f(std::complex<float>{});
    case dtype::c64: return f(std::complex<double>{});
    default: break;
  }
  return fail(why, std::string(fn) + ": element type " + dtype_name(t) + " not supported");
}

}  // namespace vgpu::host::reference::blas
