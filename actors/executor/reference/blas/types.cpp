// Element sizes, loads and stores of every dtype, and the IEEE half and
// bfloat16 conversions they need.
#include <cmath>
#include <cstring>
#include <limits>

#include "actors/executor/reference/blas/blas_internal.h"

namespace vgpu::host::reference::blas {

namespace {

uint32_t bits_of(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}
float float_of(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

template <class E>
E read(const void* base, int64_t i) {
  E e;
  std::memcpy(&e, static_cast<const unsigned char*>(base) + i * int64_t(sizeof(E)), sizeof e);
  return e;
}
template <class E>
void write(void* base, int64_t i, E e) {
  std::memcpy(static_cast<unsigned char*>(base) + i * int64_t(sizeof(E)), &e, sizeof e);
}

// Rounds a double to an integer type, saturating instead of the undefined
// behaviour of an out-of-range cast (cuBLAS's float-to-int conversions saturate
// too); NaN becomes 0.
template <class I>
I saturate(double v) {
  if (std::isnan(v)) return 0;
  v = std::nearbyint(v);
  if (v <= double(std::numeric_limits<I>::min())) return std::numeric_limits<I>::min();
  if (v >= double(std::numeric_limits<I>::max())) return std::numeric_limits<I>::max();
  return static_cast<I>(v);
}

}  // namespace

float half_to_float(uint16_t h) {
  const uint32_t sign = uint32_t(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  if (exp == 0) {
    // Zero or subnormal: mant units of 2^-24, exact in float.
    const float v = std::ldexp(static_cast<float>(mant), -24);
    return sign != 0 ? -v : v;
  }
  if (exp == 31) return float_of(sign | 0x7f800000u | (mant << 13));  // inf, NaN (payload kept)
  return float_of(sign | ((exp - 15 + 127) << 23) | (mant << 13));
}

uint16_t float_to_half(float f) {
  const uint32_t u = bits_of(f);
  const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
  const int32_t exp = static_cast<int32_t>((u >> 23) & 0xffu);
  const uint32_t mant = u & 0x7fffffu;
  if (exp == 0xff) {
    // Infinity, or NaN kept quiet (a payload that would shift out to 0 must
    // not turn the NaN into infinity).
    if (mant == 0) return sign | 0x7c00u;
    return static_cast<uint16_t>(sign | 0x7e00u | (mant >> 13));
  }
  const int32_t e = exp - 127 + 15;  // half's biased exponent
  if (e >= 31) return sign | 0x7c00u;
  if (e <= 0) {
    // Half subnormal (or zero): the value in units of 2^-24 is the 24-bit
    // significand shifted right by 14 - e; below 2^-25 everything rounds to 0.
    if (e < -10) return sign;
    const uint32_t m = mant | 0x800000u;
    const int32_t shift = 14 - e;
    uint32_t h = m >> shift;
    const uint32_t rem = m & ((1u << shift) - 1);
    const uint32_t halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (h & 1u) != 0)) ++h;  // may become the min normal: right
    return static_cast<uint16_t>(sign | h);
  }
  uint32_t h = (static_cast<uint32_t>(e) << 10) | (mant >> 13);
  const uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u) != 0)) ++h;  // a carry into the exponent may reach inf: right
  return static_cast<uint16_t>(sign | h);
}

float bf16_to_float(uint16_t b) { return float_of(uint32_t(b) << 16); }

uint16_t float_to_bf16(float f) {
  const uint32_t u = bits_of(f);
  if ((u & 0x7fffffffu) > 0x7f800000u) return static_cast<uint16_t>((u >> 16) | 0x40u);  // quiet NaN
  const uint32_t rounded = u + 0x7fffu + ((u >> 16) & 1u);  // nearest even; overflow lands on inf
  return static_cast<uint16_t>(rounded >> 16);
}

std::size_t element_size(dtype t) {
  switch (t) {
    case dtype::f16:
    case dtype::bf16: return 2;
    case dtype::f32: return 4;
    case dtype::f64: return 8;
    case dtype::c32: return 8;
    case dtype::c64: return 16;
    case dtype::i8: return 1;
    case dtype::i32: return 4;
  }
  return 0;
}

const char* dtype_name(dtype t) {
  switch (t) {
    case dtype::f16: return "f16";
    case dtype::bf16: return "bf16";
    case dtype::f32: return "f32";
    case dtype::f64: return "f64";
    case dtype::c32: return "c32";
    case dtype::c64: return "c64";
    case dtype::i8: return "i8";
    case dtype::i32: return "i32";
  }
  return "?";
}

std::complex<double> load(const void* base, int64_t i, dtype t) {
  switch (t) {
    case dtype::f16: return half_to_float(read<uint16_t>(base, i));
    case dtype::bf16: return bf16_to_float(read<uint16_t>(base, i));
    case dtype::f32: return read<float>(base, i);
    case dtype::f64: return read<double>(base, i);
    case dtype::c32: {
      const auto v = read<std::complex<float>>(base, i);
      return {v.real(), v.imag()};
    }
    case dtype::c64: return read<std::complex<double>>(base, i);
    case dtype::i8: return static_cast<double>(read<int8_t>(base, i));
    case dtype::i32: return static_cast<double>(read<int32_t>(base, i));
  }
  return 0.0;
}

void store(void* base, int64_t i, dtype t, std::complex<double> v) {
  switch (t) {
    // Through float: values computed in f32 are exact there; from an f64
    // computation this rounds twice (documented, and rare to matter).
    case dtype::f16: write(base, i, float_to_half(static_cast<float>(v.real()))); return;
    case dtype::bf16: write(base, i, float_to_bf16(static_cast<float>(v.real()))); return;
    case dtype::f32: write(base, i, static_cast<float>(v.real())); return;
    case dtype::f64: write(base, i, v.real()); return;
    case dtype::c32:
      write(base, i,
            std::complex<float>(static_cast<float>(v.real()), static_cast<float>(v.imag())));
      return;
    case dtype::c64: write(base, i, v); return;
    case dtype::i8: write(base, i, saturate<int8_t>(v.real())); return;
    case dtype::i32: write(base, i, saturate<int32_t>(v.real())); return;
  }
}

}  // namespace vgpu::host::reference::blas
