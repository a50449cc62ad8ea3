// One guest connection served by the reference executor. Device memory is
// host RAM behind fake device addresses; every operation runs at once, in
// order, so streams and events only need to exist and be checked.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <deque>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "actors/executor/fatbin/module_info.h"
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
  cudaError_t on_vgpuMemsetAsync(call_context& ctx, uint64_t dst, int32_t value, uint64_t count,
                                 uint64_t stream) override;
  cudaError_t on_vgpuMemcpyDtoDAsync(call_context& ctx, uint64_t dst, uint64_t src,
                                     uint64_t count, uint64_t stream) override;

  cudaError_t on_cudaStreamCreate(call_context& ctx, uint64_t* pStream) override;
  cudaError_t on_cudaStreamCreateWithFlags(call_context& ctx, uint64_t* pStream,
                                           uint32_t flags) override;
  cudaError_t on_cudaStreamCreateWithPriority(call_context& ctx, uint64_t* pStream,
                                              uint32_t flags, int32_t priority) override;
  cudaError_t on_cudaStreamDestroy(call_context& ctx, uint64_t stream) override;
  cudaError_t on_cudaStreamSynchronize(call_context& ctx, uint64_t stream) override;
  cudaError_t on_cudaStreamQuery(call_context& ctx, uint64_t stream) override;
  cudaError_t on_cudaStreamWaitEvent(call_context& ctx, uint64_t stream, uint64_t event,
                                     uint32_t flags) override;

  cudaError_t on_cudaEventCreate(call_context& ctx, uint64_t* event) override;
  cudaError_t on_cudaEventCreateWithFlags(call_context& ctx, uint64_t* event,
                                          uint32_t flags) override;
  cudaError_t on_cudaEventRecord(call_context& ctx, uint64_t event, uint64_t stream) override;
  cudaError_t on_cudaEventSynchronize(call_context& ctx, uint64_t event) override;
  cudaError_t on_cudaEventQuery(call_context& ctx, uint64_t event) override;
  cudaError_t on_cudaEventElapsedTime(call_context& ctx, float* ms, uint64_t start,
                                      uint64_t end) override;
  cudaError_t on_cudaEventDestroy(call_context& ctx, uint64_t event) override;

  // Modules and kernels (reference_kernels.cpp): loaded, looked up and
  // launched with every check a GPU makes, but a launch is only recorded.
  cudaError_t on_vgpuModuleLoad(call_context& ctx, uint64_t module, uint64_t offset,
                                uint64_t total, const_bytes image) override;
  cudaError_t on_vgpuModuleUnload(call_context& ctx, uint64_t module) override;
  cudaError_t on_vgpuFunctionGet(call_context& ctx, uint64_t module, const_bytes name,
                                 mut_bytes layout, uint64_t* function,
                                 uint32_t* paramCount) override;
  cudaError_t on_vgpuModuleGetGlobal(call_context& ctx, uint64_t module, const_bytes name,
                                     uint64_t* dptr, uint64_t* bytes) override;
  cudaError_t on_vgpuLaunchKernel(call_context& ctx, uint64_t function, uint32_t gridX,
                                  uint32_t gridY, uint32_t gridZ, uint32_t blockX,
                                  uint32_t blockY, uint32_t blockZ, uint32_t sharedMem,
                                  uint64_t stream, uint32_t clusterX, uint32_t clusterY,
                                  uint32_t clusterZ, uint32_t launchFlags,
                                  const_bytes params) override;
  cudaError_t on_vgpuFuncGetAttributes(call_context& ctx, cudaFuncAttributes* attr,
                                       uint64_t function) override;
  cudaError_t on_vgpuFuncSetAttribute(call_context& ctx, uint64_t function, int32_t attr,
                                      int32_t value) override;
  cudaError_t on_vgpuOccupancyMaxActiveBlocks(call_context& ctx, int32_t* numBlocks,
                                              uint64_t function, int32_t blockSize,
                                              uint64_t dynamicSMemSize, uint32_t flags) override;
  cudaError_t on_vgpuHostFunc(call_context& ctx, uint64_t stream, uint64_t token) override;
  cudaError_t on_vgpuDebugLaunchRecord(call_context& ctx, uint32_t index, mut_bytes out,
                                       uint32_t* size) override;

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

  // A module image arriving in data-area chunks; grown by what arrives,
  // never reserved from the guest's `total` alone.
  struct module_upload {
    uint64_t total = 0;
    std::vector<uint8_t> bytes;
  };
  struct loaded_module {
    fatbin::module_info info;
    std::unordered_map<std::string, size_t> kernel_by_name;  // index into info.kernels
    std::unordered_map<std::string, size_t> global_by_name;  // index into info.globals
    std::vector<uint64_t> global_ptrs;                       // device address of info.globals[i]
    std::unordered_map<size_t, uint64_t> function_ids;       // kernel index -> issued id
  };
  // What cudaFuncSetAttribute changed; the rest of cudaFuncAttributes is fixed.
  struct function_state {
    uint64_t module = 0;
    size_t kernel = 0;  // index into the module's info.kernels
    int32_t max_dynamic_shared = 48 << 10;
    int32_t carveout = -1;
    int32_t cluster[3] = {0, 0, 0};
    int32_t non_portable_cluster = 0;
    int32_t cluster_policy = 0;
  };

  bool device_ok(int32_t device) const;
  // Device memory for cudaMalloc and module variables: zeroed, counted
  // against the executor's memory, entered in the ledger.
  cudaError_t allocate(const char* call, uint64_t size, uint64_t* base);
  void release_block(uint64_t base);
  cudaError_t load_module(const call_context& ctx, uint64_t module,
                          const std::vector<uint8_t>& image);
  void drop_module(std::map<uint64_t, loaded_module>::iterator it);
  const fatbin::kernel_info& kernel_of(const function_state& f) const;
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

  std::map<uint64_t, module_upload> uploads_;   // by the guest's module id
  std::map<uint64_t, loaded_module> modules_;   // by the guest's module id
  handle_table<function_state> functions_;
  // Bases of module variables: in the ledger (copies reach them) but not
  // cudaFree's to release.
  std::set<uint64_t> module_globals_;
  // The last kLaunchRecords launches, each serialized per launch_record.h.
  std::deque<std::vector<uint8_t>> launches_;
  bool warned_launch_ = false;
  bool warned_image_ = false;
};

}  // namespace vgpu::host::reference
