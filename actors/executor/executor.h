// An executor runs remoted calls: `cuda` on a real GPU through the driver API,
// `reference` on the CPU for machines without a GPU (CI, laptops). A session
// handler is opened per guest connection and owns everything the guest
// created; destroying it frees all of that (memory, streams, events, context).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "actors/executor/memory_budget.h"
#include "host_handler.h"

namespace vgpu::host {

struct session_info {
  std::string vm_id;
  uint64_t session_id = 0;
  // The VM's memory budget, shared by all its sessions (actors/memory_limits.h);
  // a session given none makes its own, unlimited.
  std::shared_ptr<memory_budget> budget;
};

class executor {
 public:
  virtual ~executor() = default;
  // "reference" or "cuda".
  virtual const char* kind() const = 0;
  // One line for the startup log and `vgpuctl`: what runs the calls.
  virtual std::string describe() const = 0;
  virtual bool is_gpu() const = 0;
  virtual int device_count() const = 0;
  // Opens a session (its own CUDA context on a GPU). nullptr and `why` on failure.
  virtual std::unique_ptr<api_handler> open_session(const session_info& info, std::string* why) = 0;
  // Device bytes currently allocated by all sessions (for logs and checks).
  virtual uint64_t bytes_in_use() const = 0;
  // The memory limit of `vm_id`'s sessions in bytes (0: none), for metrics and
  // vgpuctl; the limits wrapper (actors/memory_limits.h) knows it.
  virtual uint64_t memory_limit(const std::string& vm_id) const {
    (void)vm_id;
    return 0;
  }
  // Makes a shared region DMA-able for the device (page-locked and known to
  // the driver), so copies from and to its data areas need no staging copy.
  // The region stays pinned while the returned token lives; nullptr when the
  // executor has nothing to do (reference) or the driver refused (`why`).
  virtual std::shared_ptr<void> pin_region(uint8_t* base, uint64_t bytes, std::string* why) {
    (void)base;
    (void)bytes;
    (void)why;
    return nullptr;
  }
};

struct reference_options {
  int device_count = 1;
  uint64_t memory_bytes = 16ull << 30;  // what cudaMemGetInfo reports as total
};

std::unique_ptr<executor> make_reference_executor(const reference_options& opts);

// Loads the `cuda` executor module (libvgpu-executor-cuda.so, linked against
// NVIDIA's driver) from `module_dir`; nullptr and `why` when there is no
// driver or no GPU.
std::unique_ptr<executor> load_cuda_executor(const std::string& module_dir, std::string* why);

// The symbol the cuda executor module exports for load_cuda_executor.
using cuda_executor_factory = executor* (*)(std::string* why);
inline constexpr const char* kCudaExecutorFactory = "vgpu_make_cuda_executor";

}  // namespace vgpu::host
