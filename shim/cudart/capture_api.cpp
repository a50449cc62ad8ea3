// Stream capture in the guest: begin and end go to the host (where the cuda
// executor captures for real on the stream's CUstream); the questions about a
// capture are answered from the guest's mirror (capture_state.h).
#include <cuda_runtime_api.h>

#include "guest_remote.h"
#include "shim/cudart/capture_state.h"
#include "shim/cudart/last_error.h"

using namespace vgpu::shim;

namespace {

cudaStream_t per_thread(cudaStream_t s) { return s ? s : cudaStreamPerThread; }

// The legacy default stream synchronises with every other stream and cannot
// be captured (CUDA answers cudaErrorStreamCaptureUnsupported).
bool is_legacy(cudaStream_t s) { return s == nullptr || s == cudaStreamLegacy; }

cudaError_t begin_capture(cudaStream_t stream, cudaStreamCaptureMode mode) {
  if (mode != cudaStreamCaptureModeGlobal && mode != cudaStreamCaptureModeThreadLocal &&
      mode != cudaStreamCaptureModeRelaxed)
    return cudaErrorInvalidValue;
  if (is_legacy(stream)) return cudaErrorStreamCaptureUnsupported;
  if (stream_capturing(stream)) return cudaErrorIllegalState;
  unsigned long long id = 0, graph = 0;
  const cudaError_t st = vgpu::remote::vgpuStreamBeginCapture(stream, static_cast<int>(mode), &id, &graph);
  if (st != cudaSuccess) return st;
  auto c = std::make_shared<capture_info>();
  c->id = id;
  c->graph = graph;
  c->mode = static_cast<int>(mode);
  c->origin = stream;
  capture_started(stream, std::move(c));
  return cudaSuccess;
}

cudaError_t end_capture(cudaStream_t stream, cudaGraph_t* pGraph) {
  if (!pGraph) return cudaErrorInvalidValue;
  *pGraph = nullptr;
  auto c = capture_of(stream);
  if (!c) return cudaErrorIllegalState;
  if (c->origin != stream) return cudaErrorStreamCaptureUnmatched;  // ends where it began
  unsigned long long graph = 0;
  const cudaError_t st = vgpu::remote::vgpuStreamEndCapture(stream, &graph);
  capture_ended(c);  // the host ended it whatever the outcome
  if (st != cudaSuccess) return st;
  if (c->invalidated) {
    // The host captured what it was sent, but the guest refused part of the
    // sequence: the graph would be incomplete, so CUDA's answer is no graph.
    vgpu::remote::vgpuGraphDestroy(graph);
    return cudaErrorStreamCaptureInvalidated;
  }
  *pGraph = reinterpret_cast<cudaGraph_t>(static_cast<uintptr_t>(graph));
  return cudaSuccess;
}

cudaError_t is_capturing(cudaStream_t stream, cudaStreamCaptureStatus* status) {
  if (!status) return cudaErrorInvalidValue;
  auto c = capture_of(stream);
  *status = !c ? cudaStreamCaptureStatusNone
               : (c->invalidated ? cudaStreamCaptureStatusInvalidated : cudaStreamCaptureStatusActive);
  return cudaSuccess;
}

cudaError_t capture_info_of(cudaStream_t stream, cudaStreamCaptureStatus* status, unsigned long long* id,
                            cudaGraph_t* graph, const cudaGraphNode_t** deps, const cudaGraphEdgeData** edges,
                            size_t* num_deps) {
  if (!status) return cudaErrorInvalidValue;
  auto c = capture_of(stream);
  *status = !c ? cudaStreamCaptureStatusNone
               : (c->invalidated ? cudaStreamCaptureStatusInvalidated : cudaStreamCaptureStatusActive);
  if (id && c) *id = c->id;
  if (graph && c) *graph = reinterpret_cast<cudaGraph_t>(static_cast<uintptr_t>(c->graph));
  // The host's dependency set is not mirrored: the guest reports none, which
  // is what a caller that only adds nodes through the stream needs.
  if (deps) *deps = nullptr;
  if (edges) *edges = nullptr;
  if (num_deps) *num_deps = 0;
  return cudaSuccess;
}

cudaError_t record_event(cudaEvent_t event, cudaStream_t stream) {
  const cudaError_t st = vgpu::remote::cudaEventRecord(event, stream);
  if (st == cudaSuccess) event_recorded(event, stream);
  return st;
}

cudaError_t wait_event(cudaStream_t stream, cudaEvent_t event, unsigned flags) {
  const cudaError_t st = vgpu::remote::cudaStreamWaitEvent(stream, event, flags);
  if (st != cudaSuccess) return st;
  // Waiting on an event of a capture pulls the stream into that capture.
  if (auto c = capture_of_event(event); c && !is_legacy(stream) && !stream_capturing(stream)) capture_joined(stream, c);
  return cudaSuccess;
}

}  // namespace

extern "C" cudaError_t cudaStreamBeginCapture(cudaStream_t stream, cudaStreamCaptureMode mode) {
  return finish(begin_capture(stream, mode));
}
extern "C" cudaError_t cudaStreamBeginCapture_ptsz(cudaStream_t stream, cudaStreamCaptureMode mode) {
  return finish(begin_capture(per_thread(stream), mode));
}
extern "C" cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t* pGraph) {
  return finish(end_capture(stream, pGraph));
}
extern "C" cudaError_t cudaStreamEndCapture_ptsz(cudaStream_t stream, cudaGraph_t* pGraph) {
  return finish(end_capture(per_thread(stream), pGraph));
}
extern "C" cudaError_t cudaStreamIsCapturing(cudaStream_t stream, cudaStreamCaptureStatus* pCaptureStatus) {
  return finish(is_capturing(stream, pCaptureStatus));
}
extern "C" cudaError_t cudaStreamIsCapturing_ptsz(cudaStream_t stream, cudaStreamCaptureStatus* pCaptureStatus) {
  return finish(is_capturing(per_thread(stream), pCaptureStatus));
}
extern "C" cudaError_t cudaStreamGetCaptureInfo(cudaStream_t stream, cudaStreamCaptureStatus* captureStatus_out,
                                                unsigned long long* id_out, cudaGraph_t* graph_out,
                                                const cudaGraphNode_t** dependencies_out,
                                                const cudaGraphEdgeData** edgeData_out, size_t* numDependencies_out) {
  return finish(capture_info_of(stream, captureStatus_out, id_out, graph_out, dependencies_out, edgeData_out,
                                numDependencies_out));
}
extern "C" cudaError_t cudaStreamGetCaptureInfo_ptsz(cudaStream_t stream, cudaStreamCaptureStatus* captureStatus_out,
                                                     unsigned long long* id_out, cudaGraph_t* graph_out,
                                                     const cudaGraphNode_t** dependencies_out,
                                                     const cudaGraphEdgeData** edgeData_out,
                                                     size_t* numDependencies_out) {
  return finish(capture_info_of(per_thread(stream), captureStatus_out, id_out, graph_out, dependencies_out,
                                edgeData_out, numDependencies_out));
}
extern "C" cudaError_t cudaThreadExchangeStreamCaptureMode(cudaStreamCaptureMode* mode) {
  if (!mode || (*mode != cudaStreamCaptureModeGlobal && *mode != cudaStreamCaptureModeThreadLocal &&
                *mode != cudaStreamCaptureModeRelaxed))
    return finish(cudaErrorInvalidValue);
  const int old = thread_capture_mode();
  thread_capture_mode() = static_cast<int>(*mode);
  *mode = static_cast<cudaStreamCaptureMode>(old);
  return cudaSuccess;
}
extern "C" cudaError_t cudaEventRecord(cudaEvent_t event, cudaStream_t stream) {
  return finish(record_event(event, stream));
}
extern "C" cudaError_t cudaEventRecord_ptsz(cudaEvent_t event, cudaStream_t stream) {
  return finish(record_event(event, per_thread(stream)));
}
extern "C" cudaError_t cudaStreamWaitEvent(cudaStream_t stream, cudaEvent_t event, unsigned int flags) {
  return finish(wait_event(stream, event, flags));
}
extern "C" cudaError_t cudaStreamWaitEvent_ptsz(cudaStream_t stream, cudaEvent_t event, unsigned int flags) {
  return finish(wait_event(per_thread(stream), event, flags));
}
