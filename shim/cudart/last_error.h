// CUDA's per-thread "last error": every failing runtime call records its
// error, cudaGetLastError returns and clears it, cudaPeekAtLastError returns it.
#pragma once

#include <driver_types.h>

namespace vgpu::shim {

void set_last_error(cudaError_t e);
cudaError_t peek_last_error();
cudaError_t take_last_error();

// Records a failing status (cudaErrorNotReady is a status, not an error) and
// returns it: the exported functions end with `return finish(...)`.
inline cudaError_t finish(cudaError_t st) {
  if (st != cudaSuccess && st != cudaErrorNotReady) set_last_error(st);
  return st;
}

}  // namespace vgpu::shim
