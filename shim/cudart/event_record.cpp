// cudaEventRecordWithFlags: posted like cudaEventRecord, but its flags are
// checked here first, so a bad flag fails at once as with NVIDIA's runtime
// instead of at the next synchronising call.
#include <cuda_runtime_api.h>

#include "guest_remote.h"
#include "shim/cudart/last_error.h"

namespace {
cudaError_t record(cudaEvent_t event, cudaStream_t stream, unsigned int flags) {
  if (flags != cudaEventRecordDefault && flags != cudaEventRecordExternal) return cudaErrorInvalidValue;
  return vgpu::remote::cudaEventRecordWithFlags(event, stream, flags);
}
}  // namespace

extern "C" cudaError_t cudaEventRecordWithFlags(cudaEvent_t event, cudaStream_t stream, unsigned int flags) {
  return vgpu::shim::finish(record(event, stream, flags));
}

extern "C" cudaError_t cudaEventRecordWithFlags_ptsz(cudaEvent_t event, cudaStream_t stream, unsigned int flags) {
  return vgpu::shim::finish(record(event, stream ? stream : cudaStreamPerThread, flags));
}
