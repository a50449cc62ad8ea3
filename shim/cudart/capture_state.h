// The guest's mirror of the stream captures it started, so that
// cudaStreamIsCapturing and cudaStreamGetCaptureInfo (which PyTorch asks on
// every allocation) are answered without a round trip. A stream joins a
// capture by waiting on an event recorded in a capturing stream, as in CUDA.
#pragma once

#include <cstdint>
#include <memory>

#include <driver_types.h>

namespace vgpu::shim {

struct capture_info {
  uint64_t id = 0;     // the host's capture id (cudaStreamGetCaptureInfo's id_out)
  uint64_t graph = 0;  // the host's id of the graph being built
  int mode = 0;        // cudaStreamCaptureMode
  cudaStream_t origin = nullptr;
  // Something the capture cannot hold was attempted (a copy of guest host
  // memory, a synchronisation): cudaStreamEndCapture fails as CUDA's does.
  bool invalidated = false;
};

// The capture `stream` takes part in, or nullptr. Cheap when nothing captures.
std::shared_ptr<capture_info> capture_of(cudaStream_t stream);
inline bool stream_capturing(cudaStream_t stream) { return capture_of(stream) != nullptr; }

// Marks the stream's capture invalidated (if it has one) and returns the error
// the refused call reports: cudaErrorStreamCaptureUnsupported when it captures,
// cudaSuccess when it does not (the caller then goes ahead).
cudaError_t refuse_in_capture(cudaStream_t stream);

void capture_started(cudaStream_t stream, std::shared_ptr<capture_info> c);
void capture_joined(cudaStream_t stream, std::shared_ptr<capture_info> c);
// Removes every stream of the capture `c` from the mirror.
void capture_ended(const std::shared_ptr<capture_info>& c);

// Events recorded in a capture carry it to the streams that wait on them.
void event_recorded(cudaEvent_t event, cudaStream_t stream);
std::shared_ptr<capture_info> capture_of_event(cudaEvent_t event);

// The calling thread's capture interaction mode (cudaThreadExchangeStreamCaptureMode).
int& thread_capture_mode();

}  // namespace vgpu::shim
