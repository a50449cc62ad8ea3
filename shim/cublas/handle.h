// The guest's cublasHandle_t: a guest object holding the host's handle id and
// the state cuBLAS keeps per handle on the caller's side (pointer mode,
// stream, math mode), so that the calls that only change it stay local and
// the compute calls can be posted with everything they need.
#pragma once

#include <cstdint>

#include <cublas_api.h>

#include "protocol/wire_types.h"

// NVIDIA's header declares this struct and never defines it; here it is ours.
struct cublasContext {
  uint64_t id = 0;  // the host's handle id
  cudaStream_t stream = nullptr;
  cublasPointerMode_t pointer_mode = CUBLAS_POINTER_MODE_HOST;
  cublasMath_t math_mode = CUBLAS_DEFAULT_MATH;
  cublasAtomicsMode_t atomics_mode = CUBLAS_ATOMICS_NOT_ALLOWED;
  void* workspace = nullptr;
  size_t workspace_bytes = 0;
  // Device memory for reductions in host pointer mode (allocated on first
  // use, freed with the handle): the result lands here, then comes back by a
  // stream-ordered copy.
  void* result_buffer = nullptr;
};

namespace vgpu::shim::blas {

// `h` when it is a live handle of this process, else nullptr: a destroyed or
// made-up handle is answered CUBLAS_STATUS_NOT_INITIALIZED, never dereferenced.
cublasContext* live(cublasHandle_t h);

// The `flags` of a posted compute call for this handle (cublas.api).
uint32_t pointer_flags(const cublasContext& c);

// alpha/beta for the wire: `size` bytes by value in host pointer mode, the
// address in device pointer mode. False for a null scalar.
bool encode_scalar(const cublasContext& c, const void* value, uint32_t size, protocol::scalar16* out);

}  // namespace vgpu::shim::blas
