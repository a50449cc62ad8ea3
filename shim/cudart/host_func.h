// Host functions that belong to graphs (host_func.cpp).
#pragma once

#include <cstdint>

#include <driver_types.h>

namespace vgpu::shim {

// A token the host posts at every run of a graph's host node; `fn(user)`
// runs on the notify thread each time. The token stays valid for the process.
cudaError_t graph_host_token(cudaHostFn_t fn, void* user, uint64_t* token);

}  // namespace vgpu::shim
