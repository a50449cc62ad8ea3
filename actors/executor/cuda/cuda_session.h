// One guest connection served on a real GPU through the driver API. The
// session owns a CUDA context of its own (its own GPU address space) and
// every stream, event and allocation the guest created in it. The guest sees
// only host-issued ids and ledger-checked device addresses.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include <cublasLt.h>
#include <cuda.h>

#include "actors/executor/cuda/cuda_executor.h"
#include "actors/executor/executor.h"
#include "actors/executor/handle_table.h"
#include "actors/executor/ledger.h"
#include "actors/executor/module_uploads.h"

namespace vgpu::host::cuda {

class cuda_session final : public api_handler {
 public:
  // A session on `device` (its context is made on first use); nullptr and `why` on failure.
  static std::unique_ptr<cuda_session> open(std::shared_ptr<shared_state> state,
                                            const session_info& info, int device,
                                            std::string* why);
  ~cuda_session() override;
  // ops (vgpuctl/metrics): the memory this session holds, as its ledger counts it.
  uint64_t device_bytes() const override { return ledger_.bytes(); }
  cuda_session(const cuda_session&) = delete;
  cuda_session& operator=(const cuda_session&) = delete;

  // One method per remoted call (generated from protocol/api/cudart.api).
  VGPU_API_HANDLER_OVERRIDES

  // Largest fatbin a guest may upload (vgpuModuleLoad's `total`).

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

  // --- NVML (shim/nvml/; memory_without_context in cuda_session_nvml.cpp) ---
  // Creates the session's context on first use and makes it current: a
  // guest that only asks NVML or device queries never gets one.
  CUresult ensure_context();
  // The device's free/total bytes from the host's NVML, for cudaMemGetInfo
  // before the context exists; false when NVML cannot say.
  bool memory_without_context(uint64_t* free, uint64_t* total) const;
  // --- end NVML ---

  // cudaSuccess, or the driver failure logged at debug and mapped.
  cudaError_t check(CUresult r, const char* what, const call_context& c) const;
  // Sets a deferred reply that goes out when everything queued on `s` so far
  // has completed (a private event recorded now, polled by the worker).
  cudaError_t reply_when_done(call_context& c, CUstream s);
  // Guest stream id -> CUstream (builtins included); false for an unknown id.
  bool resolve_stream(uint64_t id, CUstream* out);
  CUevent find_event(uint64_t id);
  cudaError_t bad_handle(const char* call, const char* kind, uint64_t id,
                         const call_context& c) const;
  cudaError_t check_range(const char* call, const call_context& c, uint64_t ptr,
                          uint64_t len) const;
  cudaError_t create_stream(call_context& c, uint64_t* pStream, uint32_t flags, int32_t priority,
                            bool with_priority);
  template <typename T, typename Out, typename Query>
  cudaError_t stream_query(call_context& c, const char* call, const char* driver_call, uint64_t stream,
                           Out* out, Query query);
  function_entry* find_function(uint64_t id) { return functions_.find(id); }
  // A CUDA_ERROR_FUNCTION_NOT_LOADED (lazy loading) answered by loading it
  // and trying `call` once more.
  template <typename F>
  CUresult with_loaded(CUfunction fn, F&& call);

  std::shared_ptr<shared_state> state_;
  session_info info_;
  // This session's part of its VM's memory budget (memory_budget.h): every
  // allocation made for the guest takes its bytes here first. Module images
  // (code, constants, __device__ variables) are not counted: the driver
  // allocates them inside cuModuleLoadData and says nothing of their size.
  // Declared before the context and everything in it: destroyed after them.
  budget_share budget_;
  int device_;  // the ordinal the context was created on
  // Declared before what is created in it, so it is destroyed after all that.
  // Empty until the first call that needs it (ensure_context).
  owned_context ctx_;
  allocation_ledger ledger_;
  // Module globals (vgpuModuleGetGlobal): copies may reach them, cudaFree and
  // the teardown never free them (cuModuleUnload does). Not in ledger_, so
  // ledger_ stays "what cuMemAlloc gave this session".
  allocation_ledger globals_;
  handle_table<owned_stream> streams_;
  handle_table<shared_event> events_;
  // Declared after the streams: destroyed (unloaded) before them.
  module_uploads uploads_;  // fatbins still arriving
  std::unordered_map<uint64_t, loaded_module> modules_;  // guest module id -> module
  handle_table<function_entry> functions_;

  // --- cuBLAS (cuda_session_cublas.cpp) ----------------------------------------
  struct blas_destroy {
    void operator()(cublasContext* h) const;
  };
  // A real cuBLAS handle made in the session's context, and the stream it is
  // bound to (pointer arrays are read in that stream's order).
  struct blas_entry {
    std::unique_ptr<cublasContext, blas_destroy> handle;
    uint64_t stream_id = kStreamLegacyDefault;  // the guest's id of that stream
    CUstream stream = nullptr;
  };
  // The entry of a guest's handle id; nullptr if unknown.
  blas_entry* find_blas(uint64_t id) { return blas_handles_.find(id); }
  // The entry for a compute call: known, and its stream still alive (a guest
  // may destroy the stream it bound; cuBLAS must then never touch it).
  // nullptr with *st set otherwise.
  // check_range as a yes/no, for the cuBLAS handlers' operand lists.
  bool in_session(const char* call, const call_context& c, uint64_t ptr, uint64_t len) const {
    return check_range(call, c, ptr, len) == cudaSuccess;
  }
  // A cuBLAS scalar: its bytes (host pointer mode), or its device address,
  // which must lie in the session's memory (*ok says whether it does).
  const void* blas_scalar(const char* call, const call_context& c, const protocol::scalar16& v, uint32_t flags,
                          uint32_t size, bool* ok) const;
  // The session's context current, too (*st says why not).
  blas_entry* ready_blas(const char* call, const call_context& c, uint64_t id, cublasStatus_t* st);
  // Copies a guest's device array of `count` pointers (after its stream reached
  // this point), checks each member's `bytes` against the ledger, and puts the
  // checked copy in fresh stream-ordered device memory (*scratch, freed in
  // stream order after use): cuBLAS never reads an array the guest could still change.
  // The scratch counts against the VM's memory budget while it exists.
  struct device_scratch {
    CUdeviceptr ptr = 0;
    memory_charge charge;
  };
  cublasStatus_t blas_pointer_array(const call_context& c, const blas_entry& e, uint64_t array,
                                    int64_t count, uint64_t bytes, device_scratch* scratch);
  handle_table<blas_entry> blas_handles_;
  // --- end cuBLAS --------------------------------------------------------------
  // --- driver API: virtual memory management (cuda_session_driver.cpp) ---------
  // cuMemCreate'd physical memory, by host-issued id. A handle the guest
  // released while still mapped is released at once (the driver keeps the
  // memory until its last unmap), so only live handles are here.
  // Its bytes in the VM's budget are shared with its mappings: the budget gets
  // them back at the last of cuMemRelease and cuMemUnmap, when the driver
  // frees the memory (a released but mapped allocation still holds it).
  struct physical_alloc {
    CUmemGenericAllocationHandle handle = 0;
    uint64_t size = 0;
    std::shared_ptr<memory_charge> charge;
  };
  struct vmm_mapping {
    uint64_t size = 0;
    uint64_t reservation = 0;  // base of the reservation it lies in
    std::shared_ptr<memory_charge> charge;  // the mapped allocation's
  };
  // Is [ptr, ptr+len) inside mapped ranges of one reservation (chunks mapped
  // back to back count as one buffer, as on the GPU)?
  bool mapped_covers(uint64_t ptr, uint64_t len) const;
  // Unmaps, releases and frees everything, in that order (the destructor).
  void release_vmm();
  std::map<uint64_t, uint64_t> reservations_;  // base -> size (cuMemAddressReserve)
  std::map<uint64_t, vmm_mapping> mappings_;   // base -> mapping (cuMemMap)
  handle_table<physical_alloc> physical_;
  uint64_t physical_bytes_ = 0;  // counted in state_->used while held
  // --- end of the virtual memory management block --------------------------
  // --- stream capture and graphs (cuda_session_graphs.cpp) ---------------------
  struct graph_state;
  struct graph_state_deleter {
    void operator()(graph_state* g) const;
  };
  graph_state& graphs();
  // Destroys every graph and exec of the session (first thing in the destructor).
  void drop_graphs();
  // A host function posted to a capturing stream becomes a host node that runs
  // at every launch of the graph: it gets a call the session keeps instead of
  // the one-shot one. True (and *st) when the stream captures.
  bool capture_host_func(call_context& c, CUstream s, uint64_t token, cudaError_t* st);
  // cudaErrorStreamCaptureUnsupported for a copy through the data area on a
  // capturing stream (a graph must not hold a pointer into the shared region).
  cudaError_t capture_refuses(CUstream s, const char* call, const call_context& c);
  const std::vector<std::pair<size_t, size_t>>* param_layout(CUfunction fn);
  cudaError_t kernel_params(const call_context& c, uint64_t function, uint32_t gridX, uint32_t gridY,
                            uint32_t gridZ, uint32_t blockX, uint32_t blockY, uint32_t blockZ,
                            uint32_t sharedMem, const_bytes params, CUDA_KERNEL_NODE_PARAMS* p,
                            std::vector<void*>* args);
  std::unique_ptr<graph_state, graph_state_deleter> graphs_;
  // --- end of stream capture and graphs ------------------------------------------

  // --- cuBLASLt (branch lt; cuda_session_cublaslt.cpp) ---------------------
  // Real cublasLt handles, one per guest handle, created in this session's
  // context; declared after ctx_, so destroyed before it.
  struct lt_handle_destroy {
    void operator()(cublasLtContext* h) const;
  };
  using owned_lt_handle = std::unique_ptr<cublasLtContext, lt_handle_destroy>;
  handle_table<owned_lt_handle> lt_handles_;
  // The cublasLt handle behind a guest id: one of lt_handles_, or a cuBLAS
  // handle (id tagged protocol::lt::kBlasHandleTag), which NVIDIA's cuBLAS
  // lets a program use as a cuBLASLt handle. nullptr for an unknown id.
  cublasLtHandle_t find_lt(uint64_t id);
  // Algorithms the heuristic handed to this guest (their bytes): a matmul
  // runs only one of these, never bytes the guest made up.
  std::unordered_set<std::string> lt_algos_;
  // --- end cuBLASLt -----------------------------------------------------------
};

}  // namespace vgpu::host::cuda
