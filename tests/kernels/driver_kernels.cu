// Kernels vgpu-driver-test loads itself through the driver API (cuModuleLoadData,
// cuLibraryLoadData): built into a fatbin and a PTX file, never linked into a
// program. extern "C" keeps the names the test asks for unmangled.

extern "C" __global__ void vgpu_axpy(float a, const float* x, float* y, int n) {
  const int i = static_cast<int>(blockIdx.x * blockDim.x + threadIdx.x);
  if (i < n) y[i] = a * x[i] + y[i];
}

// Parameters of mixed sizes with padding between them (the layout the test
// reads with cuFuncGetParamInfo and packs for `extra`).
extern "C" __global__ void vgpu_mixed(char c, double d, short s, unsigned long long* out) {
  if (blockIdx.x == 0 && threadIdx.x == 0) {
    out[0] = static_cast<unsigned long long>(c);
    out[1] = static_cast<unsigned long long>(d);
    out[2] = static_cast<unsigned long long>(s);
  }
}

// A module variable (cuModuleGetGlobal) that launches add to.
__device__ int vgpu_counter;

extern "C" __global__ void vgpu_count(int add) {
  if (threadIdx.x == 0) atomicAdd(&vgpu_counter, add);
}
