// Graph, node and exec handles in the guest are the host's ids, cast.
#pragma once

#include <cstdint>

#include <driver_types.h>

namespace vgpu::shim {

inline uint64_t id_of(const void* h) { return reinterpret_cast<uintptr_t>(h); }
template <typename H>
H handle_of(uint64_t id) {
  return reinterpret_cast<H>(static_cast<uintptr_t>(id));
}

// Kernel node parameter mirrors (graph_kernel_node.cpp): forgets the nodes of
// a destroyed graph.
void forget_graph_nodes(uint64_t graph);

}  // namespace vgpu::shim
