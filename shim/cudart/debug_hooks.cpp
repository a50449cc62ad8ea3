// Test hooks vgpu exports besides NVIDIA's names (tests find them with dlsym).
#include <algorithm>
#include <cstring>

#include <cuda_runtime_api.h>

#include "api_ids.h"
#include "api_wire.h"
#include "shim/transport/guest_call.h"

// The index-th kernel launch the reference executor recorded for this
// process (layout: actors/executor/launch_record.h). A GPU executor answers
// cudaErrorNotSupported.
extern "C" cudaError_t vgpuDebugLaunchRecord(unsigned index, void* out, size_t cap, size_t* size) {
  if (!out || !size) return cudaErrorInvalidValue;
  vgpu::shim::channel_guard g;
  if (g.status() != cudaSuccess) return g.status();
  const uint64_t room = std::min<uint64_t>(cap, g->data_size());
  vgpu::wire::vgpuDebugLaunchRecord_req req{};
  req.index = index;
  req.out = vgpu::protocol::data_ref{0, room};
  vgpu::wire::vgpuDebugLaunchRecord_rep rep{};
  uint64_t seq = 0;
  cudaError_t st = g->submit(static_cast<uint16_t>(vgpu::protocol::call_id::vgpuDebugLaunchRecord), 0, &req,
                             vgpu::wire::vgpuDebugLaunchRecord_req::wire_size(), nullptr, 0, 0, &seq);
  if (st == cudaSuccess) st = g->wait(seq, &rep, vgpu::wire::vgpuDebugLaunchRecord_rep::wire_size());
  if (st != cudaSuccess) return st;
  if (rep.size > room) return cudaErrorInvalidValue;
  std::memcpy(out, g->data(), rep.size);
  *size = rep.size;
  return cudaSuccess;
}
