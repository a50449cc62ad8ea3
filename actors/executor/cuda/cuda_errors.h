// CUresult (driver API) to cudaError_t (what the guest's runtime returns),
// and readable names for the logs.
#pragma once

#include <string>

#include <cuda.h>
#include <driver_types.h>

namespace vgpu::host::cuda {

// The one mapping from driver results to guest-visible errors.
cudaError_t to_cuda_error(CUresult r);

// "CUDA_ERROR_NO_DEVICE" (cuGetErrorName), or the number when the driver
// does not know it.
std::string error_name(CUresult r);

// "CUDA_ERROR_NO_DEVICE (no CUDA-capable device is detected)".
std::string error_text(CUresult r);

}  // namespace vgpu::host::cuda
