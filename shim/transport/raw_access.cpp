#include "shim/transport/raw_access.h"

#include "shim/transport/guest_call.h"

namespace vgpu::shim::raw {

cudaError_t call(uint16_t call_id, const void* args, uint32_t arg_len, std::vector<uint8_t>* reply) {
  channel_guard g;
  if (g.status() != cudaSuccess) return g.status();
  uint64_t seq = 0;
  cudaError_t st = g->submit(call_id, 0, args, arg_len, nullptr, 0, 0, &seq);
  if (st != cudaSuccess) return st;
  reply->assign(8192, 0);
  uint32_t len = 0;
  st = g->wait(seq, reply->data(), static_cast<uint32_t>(reply->size()), &len);
  reply->resize(len < reply->size() ? len : reply->size());
  return st;
}

cudaError_t post(uint16_t call_id, const void* args, uint32_t arg_len) {
  return guest_post(call_id, args, arg_len, nullptr, 0);
}

bool write_record(const void* body, uint32_t len) {
  channel_guard g;
  return g.status() == cudaSuccess && g->write_raw(body, len);
}

}  // namespace vgpu::shim::raw
