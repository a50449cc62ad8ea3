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
#include <utility>
#include <vector>

#include "actors/executor/fatbin/module_info.h"
#include "actors/executor/handle_table.h"
#include "actors/executor/launch_record.h"  // graphs: a captured launch
#include "actors/executor/ledger.h"
#include "actors/executor/module_uploads.h"
#include "actors/executor/reference/reference_executor.h"

namespace vgpu::host::reference {

class reference_session final : public api_handler {
 public:
  reference_session(std::shared_ptr<shared_state> state, session_info info);
  ~reference_session() override;
  // ops (vgpuctl/metrics): the memory this session holds, as its ledger counts it.
  uint64_t device_bytes() const override { return ledger_.bytes(); }
  reference_session(const reference_session&) = delete;
  reference_session& operator=(const reference_session&) = delete;

  // One method per remoted call (generated from protocol/api/cudart.api).
  // Modules and kernels (reference_kernels.cpp) are loaded, looked up and
  // launched with every check a GPU makes, but a launch is only recorded.
  VGPU_API_HANDLER_OVERRIDES

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
  // This session's part of its VM's memory budget (memory_budget.h): what the
  // guest allocates itself (cudaMalloc, cudaMallocAsync, cuMemCreate) counts,
  // module variables do not (as on the cuda executor, which cannot measure
  // them). Declared before every allocation so that it is destroyed after them.
  budget_share budget_;
  allocation_ledger ledger_;
  std::map<uint64_t, host_block> memory_;  // device base -> its host bytes
  handle_table<stream_state> streams_;
  handle_table<event_state> events_;

  module_uploads uploads_;  // fatbins still arriving
  std::map<uint64_t, loaded_module> modules_;   // by the guest's module id
  handle_table<function_state> functions_;
  // Bases of module variables: in the ledger (copies reach them) but not
  // cudaFree's to release.
  std::set<uint64_t> module_globals_;
  // The last kLaunchRecords launches, each serialized per launch_record.h.
  std::deque<std::vector<uint8_t>> launches_;
  // cudaDeviceSetLimit's values, indexed by cudaLimit (defaults as an H100 reports).
  uint64_t limits_[7] = {1024, 1 << 20, 8 << 20, 2, 2048, 64, 0};

  // --- driver API: virtual memory management (reference_session_driver.cpp) --
  // Emulated with the host's own VMM: a reservation is PROT_NONE address
  // space, a cuMemCreate'd allocation is a memfd, cuMemMap maps the memfd into
  // the reservation (MAP_FIXED|MAP_SHARED). Chunks mapped back to back are one
  // contiguous host buffer, and two mappings of one allocation alias, as on a GPU.
  struct vmm_reservation {
    uint8_t* host = nullptr;
    uint64_t size = 0;
    vmm_reservation(uint8_t* h, uint64_t s) : host(h), size(s) {}
    ~vmm_reservation();
    vmm_reservation(const vmm_reservation&) = delete;
    vmm_reservation& operator=(const vmm_reservation&) = delete;
  };
  struct vmm_physical {
    int fd = -1;
    uint64_t size = 0;
    shared_state* state = nullptr;  // its bytes count against the memory until released
    // Its bytes in the VM's budget, shared with its mappings: the budget gets
    // them back at the last of cuMemRelease and cuMemUnmap, when the driver
    // frees the memory (a released but mapped allocation still holds it).
    std::shared_ptr<memory_charge> charge;
    vmm_physical(int f, uint64_t s, shared_state* st, std::shared_ptr<memory_charge> c)
        : fd(f), size(s), state(st), charge(std::move(c)) {}
    ~vmm_physical();
    vmm_physical(const vmm_physical&) = delete;
    vmm_physical& operator=(const vmm_physical&) = delete;
  };
  struct vmm_mapping {
    uint64_t size = 0;
    uint64_t reservation = 0;
    uint32_t access[8] = {};  // CUmemAccess_flags per device ordinal
    std::shared_ptr<memory_charge> charge;  // the mapped allocation's (see vmm_physical)
  };
  // Inside mappings of one reservation, back to back (see cuda_session.h).
  bool mapped_covers(uint64_t ptr, uint64_t len) const;
  // Host bytes behind a mapped address; nullptr when not mapped.
  uint8_t* mapped_host_at(uint64_t ptr);
  // Declared in this order so that mappings go before what they map.
  std::map<uint64_t, std::unique_ptr<vmm_reservation>> reservations_;  // by device base
  handle_table<std::unique_ptr<vmm_physical>> physical_;
  std::map<uint64_t, vmm_mapping> mappings_;  // by device base
  // --- end of the virtual memory management block --------------------------

  // --- stream capture and graphs (reference_session_graphs.cpp) ---------------
  // Graphs are ordered lists of recorded operations; capture turns the posted
  // operations of a capturing stream into nodes instead of running them. The
  // hooks below are called by those operations after their checks: true (or
  // an error) means the capture took the operation.
  struct graph_state;
  struct graph_state_deleter {
    void operator()(graph_state* g) const;
  };
  graph_state& graphs();
  bool capture_launch(uint64_t function, const launch_record_header& h, const_bytes params);
  bool capture_memset(uint64_t stream, uint64_t dst, int32_t value, uint64_t count);
  bool capture_copy(uint64_t stream, uint64_t dst, uint64_t src, uint64_t count);
  bool capture_host_func(uint64_t stream, uint64_t token);
  bool capture_event_record(uint64_t event, uint64_t stream);
  bool capture_event_wait(uint64_t stream, uint64_t event);
  // cudaErrorStreamCaptureUnsupported (and the capture invalidated) for an
  // operation a capture cannot hold; cudaSuccess when the stream is not capturing.
  cudaError_t capture_refuses(uint64_t stream, const char* call);
  cudaError_t graph_memset(call_context& ctx, uint64_t dst, uint64_t pitch, uint32_t value,
                           uint32_t element_size, uint64_t width, uint64_t height);
  std::unique_ptr<graph_state, graph_state_deleter> graphs_;
  // --- end of stream capture and graphs ------------------------------------------

  bool warned_launch_ = false;
  bool warned_image_ = false;

  // --- cuBLAS (reference_session_cublas.cpp) ---------------------------------
  // A handle's host state; the arithmetic runs at once on the CPU BLAS.
  struct blas_handle {
    uint64_t stream = 0;
    uint64_t workspace = 0;
    uint64_t workspace_bytes = 0;
    int32_t math_mode = 0;
    int32_t atomics_mode = 0;
  };
  // The host bytes of [ptr, ptr+len) when the session holds that range
  // (len 0: a non-null placeholder never touched); nullptr otherwise.
  uint8_t* blas_bytes(const char* call, const call_context& ctx, uint64_t ptr, uint64_t len);
  // A reduction (dot, nrm2, asum, iamax) into `result` (host bytes).
  cublasStatus_t blas_reduce(call_context& ctx, uint64_t handle, int32_t op, int64_t n, uint64_t x, int64_t incx,
                             uint64_t y, int64_t incy, int32_t dtype, protocol::scalar16* result);
  handle_table<blas_handle> blas_handles_;
  // --- end cuBLAS ------------------------------------------------------------

  // --- cuBLASLt (branch lt; reference_session_cublaslt.cpp) ---------------
  // Handle ids the guest created; nothing stands behind them on the CPU.
  handle_table<bool> lt_handles_;
  // True for one of lt_handles_, or a cuBLAS handle's id tagged
  // protocol::lt::kBlasHandleTag (a cublasHandle_t used as a cublasLtHandle_t).
  bool lt_handle_ok(uint64_t id);
  // --- end cuBLASLt ---------------------------------------------------------
};

}  // namespace vgpu::host::reference
