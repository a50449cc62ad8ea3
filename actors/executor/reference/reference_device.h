// The device the reference executor pretends to be: its cudaDeviceProp and
// its answers to cudaDeviceGetAttribute, derived from one another so that a
// program asking both ways sees the same device.
#pragma once

#include <cstdint>

#include <driver_types.h>

#include "actors/executor/executor.h"

namespace vgpu::host::reference {

inline constexpr const char* kDeviceName = "vgpu reference executor (CPU, not a GPU)";

cudaDeviceProp make_properties(const reference_options& opts);

// cudaErrorInvalidValue for an attribute outside cudaDeviceAttr's range;
// attributes this device has no figure for read 0.
cudaError_t device_attribute(const cudaDeviceProp& p, int32_t attr, int32_t* value);

}  // namespace vgpu::host::reference
