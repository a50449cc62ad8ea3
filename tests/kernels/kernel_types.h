// Types shared by vgpu-kernel-test and libvgpu_kernels_dl.so (host and device
// see the same layout: CUDA guarantees it for plain structs).
#pragma once

#include <cuda_runtime_api.h>

// The exported entry points of libvgpu_kernels_dl.so (looked up with dlsym).
//   vgpu_dl_launch: launches dl_fill<<<(n + 127) / 128, 128, 0, stream>>>(out, n, seed)
//                   and returns cudaGetLastError();
//   vgpu_dl_kernel: the host stub of dl_fill, for cudaLaunchKernel from the executable.
// dl_fill writes out[i] = i * 7 + seed for i < n.
using vgpu_dl_launch_fn = cudaError_t (*)(int* out, int n, int seed, cudaStream_t stream);
using vgpu_dl_kernel_fn = const void* (*)();
constexpr const char* kDlFillMangled = "_Z7dl_fillPiii";  // void dl_fill(int*, int, int)
constexpr int kDlBlock = 128;
