// Kernels and variables of many shapes for tests/unit/cubin_test.cpp. It is
// compiled at build time (cubin_tests.cmake) into PTX-only and cubin-only
// fatbins; the test checks that the reference executor reads the same
// layouts from both. Nothing here is ever run.
#include <cstdio>

struct S24 { double a, b, c; };
struct __align__(16) V { float x, y, z, w; };
struct __align__(32) A32 { int x; };
struct __align__(64) A64 { char c; };
struct Odd3 { char c[3]; };
struct __align__(4) Odd5 { char c[5]; };  // sizeof 8: C++ pads to the alignment
struct Empty {};
template <int N> struct Blob { char b[N]; };

__device__ int counter;
__device__ float table[100];
__constant__ double coeffs[8];
__device__ int initialised[4] = {1, 2, 3, 4};
__constant__ int constant_init[3] = {5, 6, 7};
static __device__ int file_static;
__device__ __managed__ int managed_value;
__device__ double2 pairs[7];

__global__ void add(float* a, const float* b, int n) {
  const int i = threadIdx.x;
  if (i < n) a[i] += b[i] * table[i] + static_cast<float>(coeffs[0]) + file_static;
  atomicAdd(&counter, initialised[i & 3] + constant_init[i % 3]);
}
__global__ void mixed(char c, S24 s, short h, V v, double d, unsigned char u) {}
__global__ void wide(char c, A32 a) {}
__global__ void wider(char c, A64 a, char d, A32 e) {}
__global__ void odd(char c, Odd3 o, char d, Odd5 f, short e) {}
__global__ void empty_struct(Empty e, int x) {}
__global__ void big4k(Blob<4096> b, int n) {}
// Large blocks: ptxas switches to its long parameter record (attribute 0x45).
__global__ void big16k(Blob<16384> b, char c) {}
__global__ void big30k(char c, Blob<30000> b, int n) {}
__global__ void grid_constant(const __grid_constant__ Blob<40> b, int* out) { out[0] = b.b[3]; }
__global__ void vectors(float4* a, double2 b, char c, long long d, short2 e, char3 f) {}
__global__ void arrays_of_pointers(int (*rows)[3], const char* const* names, int n) {}
#define P4(i) int a##i##0, int a##i##1, int a##i##2, int a##i##3
__global__ void forty(P4(0), P4(1), P4(2), P4(3), P4(4), P4(5), P4(6), P4(7), P4(8), P4(9)) {}
extern "C" __global__ void none() {}
template <typename T, int N>
__global__ void tmpl(T t, Blob<N> b) {}
template __global__ void tmpl<double, 3>(double, Blob<3>);
template __global__ void tmpl<short, 7>(short, Blob<7>);
// A kernel with internal linkage, launched so that it is kept.
static __global__ void internal_kernel(int x, char y) {}
void launch_internal() { internal_kernel<<<1, 1>>>(1, 2); }
// A device function that is not inlined: code, but no kernel.
__device__ __noinline__ int helper(int x) { return x * counter; }
__global__ void calls_helper(int* o) { *o = helper(*o); }
__global__ void prints(int x) { printf("x=%d\n", x); }
