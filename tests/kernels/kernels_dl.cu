// libvgpu_kernels_dl.so: device code in a shared library that vgpu-kernel-test
// loads with dlopen() after main() started, so its fatbin is registered late
// (what PyTorch's and CUB's libraries do). Built with nvcc, shared runtime, no RPATH.
#include <cuda_runtime.h>

#include "kernel_types.h"

__global__ void dl_fill(int* out, int n, int seed) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) out[i] = i * 7 + seed;
}

extern "C" __attribute__((visibility("default"))) cudaError_t vgpu_dl_launch(int* out, int n, int seed,
                                                                            cudaStream_t stream) {
  dl_fill<<<(n + kDlBlock - 1) / kDlBlock, kDlBlock, 0, stream>>>(out, n, seed);
  return cudaGetLastError();
}

extern "C" __attribute__((visibility("default"))) const void* vgpu_dl_kernel() {
  return reinterpret_cast<const void*>(&dl_fill);
}
