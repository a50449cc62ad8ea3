// Device variables (__device__, __constant__) named by their host shadow:
// resolved once to their address in the session's module, then ordinary copies.
#include <cuda_runtime_api.h>

#include "shim/cudart/copy.h"
#include "shim/cudart/last_error.h"
#include "shim/cudart/registry.h"

namespace vgpu::shim {
namespace {

cudaError_t symbol_address(const void* symbol, uint64_t* dptr, uint64_t* bytes) {
  var_entry* v = find_var(symbol);
  if (!v) return cudaErrorInvalidSymbol;
  const cudaError_t st = resolve_var(v);
  if (st != cudaSuccess) return st;
  *dptr = v->dptr;
  *bytes = v->bytes;
  return cudaSuccess;
}

cudaError_t to_symbol(const void* symbol, const void* src, size_t count, size_t offset, cudaMemcpyKind kind,
                      cudaStream_t stream, uint32_t flags) {
  if (kind != cudaMemcpyHostToDevice && kind != cudaMemcpyDeviceToDevice && kind != cudaMemcpyDefault)
    return cudaErrorInvalidMemcpyDirection;
  uint64_t dptr = 0, bytes = 0;
  const cudaError_t st = symbol_address(symbol, &dptr, &bytes);
  if (st != cudaSuccess) return st;
  if (offset > bytes || count > bytes - offset) return cudaErrorInvalidValue;
  return copy(reinterpret_cast<void*>(dptr + offset), src, count, kind, stream, flags);
}

cudaError_t from_symbol(void* dst, const void* symbol, size_t count, size_t offset, cudaMemcpyKind kind,
                        cudaStream_t stream, uint32_t flags) {
  if (kind != cudaMemcpyDeviceToHost && kind != cudaMemcpyDeviceToDevice && kind != cudaMemcpyDefault)
    return cudaErrorInvalidMemcpyDirection;
  uint64_t dptr = 0, bytes = 0;
  const cudaError_t st = symbol_address(symbol, &dptr, &bytes);
  if (st != cudaSuccess) return st;
  if (offset > bytes || count > bytes - offset) return cudaErrorInvalidValue;
  return copy(dst, reinterpret_cast<const void*>(dptr + offset), count, kind, stream, flags);
}

cudaStream_t per_thread(cudaStream_t s) { return s ? s : cudaStreamPerThread; }

}  // namespace
}  // namespace vgpu::shim

using namespace vgpu::shim;

extern "C" cudaError_t cudaMemcpyToSymbol(const void* symbol, const void* src, size_t count, size_t offset,
                                          cudaMemcpyKind kind) {
  return finish(to_symbol(symbol, src, count, offset, kind, nullptr, 0));
}
extern "C" cudaError_t cudaMemcpyToSymbol_ptds(const void* symbol, const void* src, size_t count, size_t offset,
                                               cudaMemcpyKind kind) {
  return finish(to_symbol(symbol, src, count, offset, kind, cudaStreamPerThread, 0));
}
extern "C" cudaError_t cudaMemcpyToSymbolAsync(const void* symbol, const void* src, size_t count, size_t offset,
                                               cudaMemcpyKind kind, cudaStream_t stream) {
  return finish(to_symbol(symbol, src, count, offset, kind, stream, kAsync));
}
extern "C" cudaError_t cudaMemcpyToSymbolAsync_ptsz(const void* symbol, const void* src, size_t count,
                                                    size_t offset, cudaMemcpyKind kind, cudaStream_t stream) {
  return finish(to_symbol(symbol, src, count, offset, kind, per_thread(stream), kAsync));
}
extern "C" cudaError_t cudaMemcpyFromSymbol(void* dst, const void* symbol, size_t count, size_t offset,
                                            cudaMemcpyKind kind) {
  return finish(from_symbol(dst, symbol, count, offset, kind, nullptr, 0));
}
extern "C" cudaError_t cudaMemcpyFromSymbol_ptds(void* dst, const void* symbol, size_t count, size_t offset,
                                                 cudaMemcpyKind kind) {
  return finish(from_symbol(dst, symbol, count, offset, kind, cudaStreamPerThread, 0));
}
extern "C" cudaError_t cudaMemcpyFromSymbolAsync(void* dst, const void* symbol, size_t count, size_t offset,
                                                 cudaMemcpyKind kind, cudaStream_t stream) {
  return finish(from_symbol(dst, symbol, count, offset, kind, stream, kAsync));
}
extern "C" cudaError_t cudaMemcpyFromSymbolAsync_ptsz(void* dst, const void* symbol, size_t count, size_t offset,
                                                      cudaMemcpyKind kind, cudaStream_t stream) {
  return finish(from_symbol(dst, symbol, count, offset, kind, per_thread(stream), kAsync));
}

extern "C" cudaError_t cudaGetSymbolAddress(void** devPtr, const void* symbol) {
  if (!devPtr) return finish(cudaErrorInvalidValue);
  uint64_t dptr = 0, bytes = 0;
  const cudaError_t st = symbol_address(symbol, &dptr, &bytes);
  if (st == cudaSuccess) *devPtr = reinterpret_cast<void*>(dptr);
  return finish(st);
}

extern "C" cudaError_t cudaGetSymbolSize(size_t* size, const void* symbol) {
  if (!size) return finish(cudaErrorInvalidValue);
  uint64_t dptr = 0, bytes = 0;
  const cudaError_t st = symbol_address(symbol, &dptr, &bytes);
  if (st == cudaSuccess) *size = bytes;
  return finish(st);
}
