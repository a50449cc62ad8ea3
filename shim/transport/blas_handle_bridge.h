// NVIDIA documents that any cublasHandle_t may be passed where a
// cublasLtHandle_t is expected (PyTorch does exactly that for its cuBLASLt
// matmuls). vgpu's libcublas and libcublasLt are separate libraries with
// handle objects of their own, so libcublas records its live handles here,
// in the process's one transport, and libcublasLt looks a foreign handle up.
#pragma once

#include <cstdint>

namespace vgpu::shim {

// libcublas: a handle was created (its host id) or destroyed.
void bridge_add_blas_handle(const void* handle, uint64_t host_id);
void bridge_remove_blas_handle(const void* handle);

// libcublasLt: the host id of a live cuBLAS handle, or 0 when `handle` is none.
uint64_t bridge_blas_handle_id(const void* handle);

}  // namespace vgpu::shim
