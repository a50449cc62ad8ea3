// One synchronous call of the graph API whose input array (node ids) goes
// through the channel's data area and whose output array, if any, comes back
// through it; the channel is held for the whole exchange.
#pragma once

#include <cstdint>
#include <cstring>

#include <driver_types.h>

#include "api_ids.h"
#include "protocol/message.h"
#include "shim/transport/guest_call.h"

namespace vgpu::shim {

template <typename Req, typename Rep>
cudaError_t data_call(protocol::call_id id, Req& req, Rep* rep, protocol::data_ref* in_field, const void* in,
                      uint64_t in_len, protocol::data_ref* out_field = nullptr, void* out = nullptr,
                      uint64_t out_cap = 0, const void* tail = nullptr, uint32_t tail_len = 0) {
  channel_guard g;
  if (g.status() != cudaSuccess) return g.status();
  const uint64_t out_off = (in_len + 7) / 8 * 8;
  if (out_off + out_cap > g->data_size() || in_len > g->data_size()) return cudaErrorInvalidValue;
  if (in_len) std::memcpy(g->data(), in, in_len);
  if (in_field) *in_field = protocol::data_ref{0, in_len};
  if (out_field) *out_field = protocol::data_ref{out_off, out_cap};
  uint64_t seq = 0;
  cudaError_t st = g->submit(static_cast<uint16_t>(id), 0, &req, Req::wire_size(), tail, tail_len, in_len, &seq);
  if (st == cudaSuccess) st = g->wait(seq, rep, Rep::wire_size());
  if (st == cudaSuccess && out_cap) std::memcpy(out, g->data() + out_off, out_cap);
  return st;
}

}  // namespace vgpu::shim
