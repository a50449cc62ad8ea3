// The guest side's entry to the transport, used by the generated
// vgpu::remote::<call> functions and the hand-written CUDA functions.
#pragma once

#include <cstdint>
#include <mutex>

#include <driver_types.h>

#include "shim/transport/guest_channel.h"

namespace vgpu::shim {

// The calling thread's current device (cudaSetDevice); every message carries it.
void set_thread_device(int device);
int thread_device();

// The process has connected to the mediator (some call did): what NVIDIA's
// runtime would call "the driver is initialised, the primary context in use".
bool channel_connected();

// One synchronous call: locks the process's channel, sends, waits. `tail`
// (optional) follows the fixed arguments inline.
cudaError_t guest_call(uint16_t call_id, const void* req, uint32_t req_len, void* rep,
                       uint32_t rep_len, uint64_t data_len, const void* tail = nullptr,
                       uint32_t tail_len = 0);

// One posted call: queued in stream order, no reply awaited. Its error, if
// any, surfaces at the next synchronising call.
cudaError_t guest_post(uint16_t call_id, const void* req, uint32_t req_len, const void* tail,
                       uint32_t tail_len);

// Exclusive use of the process's channel for a sequence of requests (the
// pipelined chunks of a large copy). Connects on first use.
class channel_guard {
 public:
  channel_guard();
  ~channel_guard();
  channel_guard(const channel_guard&) = delete;
  channel_guard& operator=(const channel_guard&) = delete;

  // cudaSuccess when a channel is held; otherwise why not.
  cudaError_t status() const { return status_; }
  guest_channel* operator->() const { return channel_; }
  guest_channel& operator*() const { return *channel_; }

 private:
  std::unique_lock<std::mutex> lock_;
  guest_channel* channel_ = nullptr;
  cudaError_t status_ = cudaErrorDevicesUnavailable;
};

}  // namespace vgpu::shim
