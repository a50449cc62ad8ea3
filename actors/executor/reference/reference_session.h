// One guest connection served by the reference executor. Device memory is
// host RAM behind fake device addresses; every operation runs at once, in
// order, so streams and events only need to exist and be checked.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <memory>

#include "actors/executor/handle_table.h"
#include "actors/executor/ledger.h"
#include "actors/executor/reference/reference_executor.h"

namespace vgpu::host::reference {

class reference_session final : public api_handler {
 public:
  reference_session(std::shared_ptr<shared_state> state, session_info info);
  ~reference_session() override;
  reference_session(const reference_session&) = delete;
  reference_session& operator=(const reference_session&) = delete;

  cudaError_t on_cudaGetDeviceCount(call_context& ctx, int32_t* count) override;
  cudaError_t on_cudaDriverGetVersion(call_context& ctx, int32_t* driverVersion) override;
  cudaError_t on_cudaGetDeviceProperties(call_context& ctx, cudaDeviceProp* prop,
                                         int32_t device) override;
  cudaError_t on_cudaDeviceGetAttribute(call_context& ctx, int32_t* value, int32_t attr,
                                        int32_t device) override;
  cudaError_t on_cudaDeviceSynchronize(call_context& ctx) override;

  cudaError_t on_cudaMalloc(call_context& ctx, uint64_t* devPtr, uint64_t size) override;
  cudaError_t on_cudaFree(call_context& ctx, uint64_t devPtr) override;
  cudaError_t on_cudaMemGetInfo(call_context& ctx, uint64_t* free, uint64_t* total) override;

  cudaError_t on_vgpuMemcpyHtoD(call_context& ctx, uint64_t dst, const_bytes src,
                                uint64_t stream, uint32_t flags) override;
  cudaError_t on_vgpuMemcpyDtoH(call_context& ctx, mut_bytes dst, uint64_t src,
                                uint64_t stream, uint32_t flags) override;
  cudaError_t on_vgpuMemcpyDtoD(call_context& ctx, uint64_t dst, uint64_t src, uint64_t count,
                                uint64_t stream, uint32_t flags) override;
  cudaError_t on_vgpuMemset(call_context& ctx, uint64_t dst, int32_t value, uint64_t count,
                            uint64_t stream, uint32_t flags) override;

  cudaError_t on_cudaStreamCreate(call_context& ctx, uint64_t* pStream) override;
  cudaError_t on_cudaStreamCreateWithFlags(call_context& ctx, uint64_t* pStream,
                                           uint32_t flags) override;
  cudaError_t on_cudaStreamCreateWithPriority(call_context& ctx, uint64_t* pStream,
                                              uint32_t flags, int32_t priority) override;
  cudaError_t on_cudaStreamDestroy(call_context& ctx, uint64_t stream) override;
  cudaError_t on_cudaStreamSynchronize(call_context& ctx, uint64_t stream) override;
  cudaError_t on_cudaStreamQuery(call_context& ctx, uint64_t stream) override;

  cudaError_t on_cudaEventCreate(call_context& ctx, uint64_t* event) override;
  cudaError_t on_cudaEventCreateWithFlags(call_context& ctx, uint64_t* event,
                                          uint32_t flags) override;
  cudaError_t on_cudaEventRecord(call_context& ctx, uint64_t event, uint64_t stream) override;
  cudaError_t on_cudaEventSynchronize(call_context& ctx, uint64_t event) override;
  cudaError_t on_cudaEventQuery(call_context& ctx, uint64_t event) override;
  cudaError_t on_cudaEventElapsedTime(call_context& ctx, float* ms, uint64_t start,
                                      uint64_t end) override;
  cudaError_t on_cudaEventDestroy(call_context& ctx, uint64_t event) override;

 private:
  // calloc'd so that fresh memory reads as zeros (never another session's
  // bytes) and large blocks cost nothing until touched.
  struct free_deleter {
    void operator()(uint8_t* p) const { std::free(p); }
  };
  using host_block = std::unique_ptr<uint8_t, free_deleter>;

  struct stream_state {
    uint32_t flags = 0;
    int32_t priority = 0;
  };
  struct event_state {
    uint32_t flags = 0;
    bool recorded = false;
    std::chrono::steady_clock::time_point at{};
  };

  bool device_ok(int32_t device) const;
  bool stream_ok(uint64_t id);
  cudaError_t create_stream(call_context& ctx, uint64_t* pStream, uint32_t flags,
                            int32_t priority);
  // The host bytes behind a device address; only for ranges the ledger holds.
  uint8_t* host_at(uint64_t ptr);
  // Stream and range checks shared by the copies; cudaSuccess when the
  // operation may go ahead.
  cudaError_t check_range(const char* call, const call_context& ctx, uint64_t ptr,
                          uint64_t len) const;

  std::shared_ptr<shared_state> state_;
  session_info info_;
  allocation_ledger ledger_;
  std::map<uint64_t, host_block> memory_;  // device base -> its host bytes
  handle_table<stream_state> streams_;
  handle_table<event_state> events_;
};

}  // namespace vgpu::host::reference
