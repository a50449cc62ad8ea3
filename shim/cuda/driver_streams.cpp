// Streams and events through the driver API: the runtime's wire calls, whose
// handles are the same host-issued ids (a CUstream from here is a valid
// cudaStream_t and back, as with NVIDIA's libraries).
#include <cuda.h>

#include "guest_remote.h"
#include "shim/cuda/driver_common.h"

using vgpu::shim::to_cu;

namespace {
cudaStream_t rt(CUstream s) { return reinterpret_cast<cudaStream_t>(s); }
cudaEvent_t rt(CUevent e) { return reinterpret_cast<cudaEvent_t>(e); }
}  // namespace

extern "C" CUresult cuStreamCreate(CUstream* phStream, unsigned int Flags) {
  VGPU_REQUIRE_INIT();
  if (!phStream) return CUDA_ERROR_INVALID_VALUE;
  cudaStream_t s = nullptr;
  const cudaError_t st = vgpu::remote::cudaStreamCreateWithFlags(&s, Flags);
  if (st == cudaSuccess) *phStream = reinterpret_cast<CUstream>(s);
  return to_cu(st);
}

extern "C" CUresult cuStreamCreateWithPriority(CUstream* phStream, unsigned int flags, int priority) {
  VGPU_REQUIRE_INIT();
  if (!phStream) return CUDA_ERROR_INVALID_VALUE;
  cudaStream_t s = nullptr;
  const cudaError_t st = vgpu::remote::cudaStreamCreateWithPriority(&s, flags, priority);
  if (st == cudaSuccess) *phStream = reinterpret_cast<CUstream>(s);
  return to_cu(st);
}

extern "C" CUresult cuStreamDestroy(CUstream hStream) {  // cuStreamDestroy_v2
  VGPU_REQUIRE_INIT();
  return to_cu(vgpu::remote::cudaStreamDestroy(rt(hStream)));
}

extern "C" CUresult cuStreamSynchronize(CUstream hStream) {
  VGPU_REQUIRE_INIT();
  return to_cu(vgpu::remote::cudaStreamSynchronize(rt(hStream)));
}

extern "C" CUresult cuStreamQuery(CUstream hStream) {
  VGPU_REQUIRE_INIT();
  return to_cu(vgpu::remote::cudaStreamQuery(rt(hStream)));
}

extern "C" CUresult cuStreamWaitEvent(CUstream hStream, CUevent hEvent, unsigned int Flags) {
  VGPU_REQUIRE_INIT();
  return to_cu(vgpu::remote::cudaStreamWaitEvent(rt(hStream), rt(hEvent), Flags));
}

extern "C" CUresult cuEventCreate(CUevent* phEvent, unsigned int Flags) {
  VGPU_REQUIRE_INIT();
  if (!phEvent) return CUDA_ERROR_INVALID_VALUE;
  cudaEvent_t e = nullptr;
  // CU_EVENT_* and cudaEvent* flags share their values.
  const cudaError_t st = vgpu::remote::cudaEventCreateWithFlags(&e, Flags);
  if (st == cudaSuccess) *phEvent = reinterpret_cast<CUevent>(e);
  return to_cu(st);
}

extern "C" CUresult cuEventRecord(CUevent hEvent, CUstream hStream) {
  VGPU_REQUIRE_INIT();
  return to_cu(vgpu::remote::cudaEventRecord(rt(hEvent), rt(hStream)));
}

extern "C" CUresult cuEventSynchronize(CUevent hEvent) {
  VGPU_REQUIRE_INIT();
  return to_cu(vgpu::remote::cudaEventSynchronize(rt(hEvent)));
}

extern "C" CUresult cuEventQuery(CUevent hEvent) {
  VGPU_REQUIRE_INIT();
  return to_cu(vgpu::remote::cudaEventQuery(rt(hEvent)));
}

extern "C" CUresult cuEventElapsedTime(float* pMilliseconds, CUevent hStart, CUevent hEnd) {  // _v2
  VGPU_REQUIRE_INIT();
  if (!pMilliseconds) return CUDA_ERROR_INVALID_VALUE;
  return to_cu(vgpu::remote::cudaEventElapsedTime(pMilliseconds, rt(hStart), rt(hEnd)));
}

extern "C" CUresult cuEventDestroy(CUevent hEvent) {  // cuEventDestroy_v2
  VGPU_REQUIRE_INIT();
  return to_cu(vgpu::remote::cudaEventDestroy(rt(hEvent)));
}
