// One guest connection served on a real GPU through the driver API. The
// session owns a CUDA context of its own (its own GPU address space) and
// every stream, event and allocation the guest created in it. The guest sees
// only host-issued ids and ledger-checked device addresses.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include <cuda.h>

#include "actors/executor/cuda/cuda_executor.h"
#include "actors/executor/executor.h"
#include "actors/executor/handle_table.h"
#include "actors/executor/ledger.h"

namespace vgpu::host::cuda {

class cuda_session final : public api_handler {
 public:
  // Creates the session's context on `device`; nullptr and `why` on failure.
  static std::unique_ptr<cuda_session> open(std::shared_ptr<shared_state> state,
                                            const session_info& info, int device,
                                            std::string* why);
  ~cuda_session() override;
  cuda_session(const cuda_session&) = delete;
  cuda_session& operator=(const cuda_session&) = delete;

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

  cudaError_t on_vgpuMemsetAsync(call_context& ctx, uint64_t dst, int32_t value, uint64_t count,
                                 uint64_t stream) override;
  cudaError_t on_vgpuMemcpyDtoDAsync(call_context& ctx, uint64_t dst, uint64_t src,
                                     uint64_t count, uint64_t stream) override;
  cudaError_t on_cudaStreamWaitEvent(call_context& ctx, uint64_t stream, uint64_t event,
                                     uint32_t flags) override;

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

  // Largest fatbin a guest may upload (vgpuModuleLoad's `total`).
  static constexpr uint64_t kMaxModuleBytes = 1ull << 30;

 private:
  // Owners of driver objects. Streams and events are destroyed before the
  // context (see the destructor), while it is current.
  struct context_destroy {
    void operator()(CUctx_st* c) const;
  };
  struct stream_destroy {
    void operator()(CUstream_st* s) const;
  };
  struct event_destroy {
    void operator()(CUevent_st* e) const;
  };
  struct module_unload {
    void operator()(CUmod_st* m) const;
  };
  using owned_context = std::unique_ptr<CUctx_st, context_destroy>;
  using owned_stream = std::unique_ptr<CUstream_st, stream_destroy>;
  // Shared: a deferred cudaEventSynchronize keeps the event it polls alive
  // even if the table's entry goes.
  using shared_event = std::shared_ptr<CUevent_st>;
  using owned_module = std::unique_ptr<CUmod_st, module_unload>;

  // A fatbin still arriving in chunks (vgpuModuleLoad).
  struct module_upload {
    uint64_t total = 0;
    std::vector<uint8_t> bytes;  // what arrived so far
  };
  struct loaded_module {
    owned_module module;
    std::vector<uint64_t> globals;  // bases of the ranges in globals_ that live in it
  };
  // What a function id stands for; the launch path reads nothing else.
  struct function_entry {
    CUfunction fn = nullptr;
    uint64_t module = 0;       // the guest's module id (vgpuModuleUnload drops it)
    uint64_t param_bytes = 0;  // the packed parameter block a launch must carry
  };

  cuda_session(std::shared_ptr<shared_state> state, session_info info, int device,
               owned_context ctx);

  // cudaSuccess, or the driver failure logged at debug and mapped.
  cudaError_t check(CUresult r, const char* what, const call_context& c) const;
  // Guest stream id -> CUstream (builtins included); false for an unknown id.
  bool resolve_stream(uint64_t id, CUstream* out);
  CUevent find_event(uint64_t id);
  cudaError_t bad_handle(const char* call, const char* kind, uint64_t id,
                         const call_context& c) const;
  cudaError_t check_range(const char* call, const call_context& c, uint64_t ptr,
                          uint64_t len) const;
  cudaError_t create_stream(call_context& c, uint64_t* pStream, uint32_t flags, int32_t priority,
                            bool with_priority);
  function_entry* find_function(uint64_t id) { return functions_.find(id); }
  // A CUDA_ERROR_FUNCTION_NOT_LOADED (lazy loading) answered by loading it
  // and trying `call` once more.
  template <typename F>
  CUresult with_loaded(CUfunction fn, F&& call);

  std::shared_ptr<shared_state> state_;
  session_info info_;
  int device_;  // the ordinal the context was created on
  // Declared before what is created in it, so it is destroyed after all that.
  owned_context ctx_;
  allocation_ledger ledger_;
  // Module globals (vgpuModuleGetGlobal): copies may reach them, cudaFree and
  // the teardown never free them (cuModuleUnload does). Not in ledger_, so
  // ledger_ stays "what cuMemAlloc gave this session".
  allocation_ledger globals_;
  handle_table<owned_stream> streams_;
  handle_table<shared_event> events_;
  // Declared after the streams: destroyed (unloaded) before them.
  std::unordered_map<uint64_t, module_upload> uploads_;  // guest module id -> partial fatbin
  std::unordered_map<uint64_t, loaded_module> modules_;  // guest module id -> module
  handle_table<function_entry> functions_;
};

}  // namespace vgpu::host::cuda
