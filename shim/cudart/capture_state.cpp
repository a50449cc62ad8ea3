// The capture mirror (capture_state.h). One mutex; an atomic count of
// capturing streams lets the common case (no capture at all) skip it.
#include "shim/cudart/capture_state.h"

#include <atomic>
#include <mutex>
#include <unordered_map>

#include <cuda_runtime_api.h>

namespace vgpu::shim {

namespace {

struct mirror {
  std::mutex mutex;
  std::atomic<size_t> capturing{0};
  std::unordered_map<cudaStream_t, std::shared_ptr<capture_info>> streams;
  std::unordered_map<cudaEvent_t, std::shared_ptr<capture_info>> events;
};

mirror& state() {
  static auto* m = new mirror;  // used from static destructors of programs
  return *m;
}

}  // namespace

std::shared_ptr<capture_info> capture_of(cudaStream_t stream) {
  auto& m = state();
  if (m.capturing.load(std::memory_order_acquire) == 0) return nullptr;
  std::lock_guard<std::mutex> lock(m.mutex);
  auto it = m.streams.find(stream);
  return it == m.streams.end() ? nullptr : it->second;
}

cudaError_t refuse_in_capture(cudaStream_t stream) {
  auto c = capture_of(stream);
  if (!c) return cudaSuccess;
  std::lock_guard<std::mutex> lock(state().mutex);
  c->invalidated = true;
  return cudaErrorStreamCaptureUnsupported;
}

void capture_started(cudaStream_t stream, std::shared_ptr<capture_info> c) {
  auto& m = state();
  std::lock_guard<std::mutex> lock(m.mutex);
  m.streams[stream] = std::move(c);
  m.capturing.store(m.streams.size(), std::memory_order_release);
}

void capture_joined(cudaStream_t stream, std::shared_ptr<capture_info> c) { capture_started(stream, std::move(c)); }

void capture_ended(const std::shared_ptr<capture_info>& c) {
  auto& m = state();
  std::lock_guard<std::mutex> lock(m.mutex);
  for (auto it = m.streams.begin(); it != m.streams.end();) it = it->second == c ? m.streams.erase(it) : std::next(it);
  for (auto it = m.events.begin(); it != m.events.end();) it = it->second == c ? m.events.erase(it) : std::next(it);
  m.capturing.store(m.streams.size(), std::memory_order_release);
}

void event_recorded(cudaEvent_t event, cudaStream_t stream) {
  auto c = capture_of(stream);
  auto& m = state();
  std::lock_guard<std::mutex> lock(m.mutex);
  if (c) m.events[event] = std::move(c);
  else if (!m.events.empty()) m.events.erase(event);  // recorded outside a capture now
}

std::shared_ptr<capture_info> capture_of_event(cudaEvent_t event) {
  auto& m = state();
  std::lock_guard<std::mutex> lock(m.mutex);
  auto it = m.events.find(event);
  return it == m.events.end() ? nullptr : it->second;
}

int& thread_capture_mode() {
  thread_local int mode = cudaStreamCaptureModeGlobal;
  return mode;
}

}  // namespace vgpu::shim
