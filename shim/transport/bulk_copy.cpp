// Bulk copies between guest memory and the device through the channel's
// data area, in chunks, pipelined: while the host copies chunk k, the guest
// fills (to the device) or drains (from the device) another slot. Shared by
// the runtime's and the driver's copy functions.
#include "shim/transport/bulk_copy.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <deque>

#include "api_ids.h"
#include "api_wire.h"
#include "shim/transport/guest_call.h"

namespace vgpu::shim {

namespace {

using protocol::call_id;

constexpr uint64_t kMaxChunk = 1ull << 20;     // first guess; the benchmark issue tunes it

// The data area split into equal slots, one chunk in flight per slot.
struct slots {
  uint64_t chunk;
  int count;
};
// VGPU_CHUNK_KB overrides the chunk size (for measurements).
uint64_t max_chunk() {
  static const uint64_t v = [] {
    const char* e = std::getenv("VGPU_CHUNK_KB");
    const long kb = e ? std::atol(e) : 0;
    return kb >= 4 ? static_cast<uint64_t>(kb) << 10 : kMaxChunk;
  }();
  return v;
}

slots plan(const guest_channel& ch) {
  const uint64_t chunk = std::min<uint64_t>(max_chunk(), ch.data_size() / 2);
  const int count = static_cast<int>(std::min<uint64_t>(guest_channel::kMaxOutstanding, ch.data_size() / chunk));
  return {chunk, count};
}

// Keeps the first failure of a pipeline while the rest of it drains.
struct first_error {
  cudaError_t st = cudaSuccess;
  void add(cudaError_t e) {
    if (st == cudaSuccess) st = e;
  }
};

}  // namespace

cudaError_t copy_to_device(uint64_t dst, const uint8_t* src, uint64_t count, uint64_t stream, uint32_t flags) {
  channel_guard g;
  if (g.status() != cudaSuccess) return g.status();
  const slots s = plan(*g);
  std::deque<uint64_t> inflight;
  first_error err;
  int slot = 0;
  for (uint64_t off = 0; off < count && err.st != cudaErrorDevicesUnavailable; off += s.chunk) {
    if (static_cast<int>(inflight.size()) == s.count) {
      err.add(g->wait(inflight.front(), nullptr, 0));
      inflight.pop_front();
    }
    const uint64_t n = std::min(s.chunk, count - off);
    std::memcpy(g->data() + slot * s.chunk, src + off, n);
    wire::vgpuMemcpyHtoD_req req{};
    req.dst = dst + off;
    req.src = protocol::data_ref{slot * s.chunk, n};
    req.stream = stream;
    req.flags = flags;
    uint64_t seq = 0;
    const cudaError_t st = g->submit(static_cast<uint16_t>(call_id::vgpuMemcpyHtoD), 0, &req,
                                     wire::vgpuMemcpyHtoD_req::wire_size(), nullptr, 0, n, &seq);
    if (st != cudaSuccess) {
      err.add(st);
      break;
    }
    inflight.push_back(seq);
    slot = (slot + 1) % s.count;
  }
  for (uint64_t seq : inflight) err.add(g->wait(seq, nullptr, 0));
  return err.st;
}

cudaError_t copy_from_device(uint8_t* dst, uint64_t src, uint64_t count, uint64_t stream, uint32_t flags) {
  channel_guard g;
  if (g.status() != cudaSuccess) return g.status();
  const slots s = plan(*g);
  struct pending {
    uint64_t seq, offset, length, slot_offset;
  };
  std::deque<pending> inflight;
  first_error err;
  auto complete_oldest = [&] {
    const pending p = inflight.front();
    inflight.pop_front();
    const cudaError_t st = g->wait(p.seq, nullptr, 0);
    err.add(st);
    if (st == cudaSuccess) std::memcpy(dst + p.offset, g->data() + p.slot_offset, p.length);
  };
  int slot = 0;
  for (uint64_t off = 0; off < count && err.st != cudaErrorDevicesUnavailable; off += s.chunk) {
    if (static_cast<int>(inflight.size()) == s.count) complete_oldest();
    const uint64_t n = std::min(s.chunk, count - off);
    wire::vgpuMemcpyDtoH_req req{};
    req.dst = protocol::data_ref{slot * s.chunk, n};
    req.src = src + off;
    req.stream = stream;
    req.flags = flags;
    uint64_t seq = 0;
    const cudaError_t st = g->submit(static_cast<uint16_t>(call_id::vgpuMemcpyDtoH), 0, &req,
                                     wire::vgpuMemcpyDtoH_req::wire_size(), nullptr, 0, n, &seq);
    if (st != cudaSuccess) {
      err.add(st);
      break;
    }
    inflight.push_back({seq, off, n, slot * s.chunk});
    slot = (slot + 1) % s.count;
  }
  while (!inflight.empty()) complete_oldest();
  return err.st;
}


}  // namespace vgpu::shim
