#include "actors/executor/reference/reference_device.h"

#include <algorithm>
#include <climits>
#include <cstring>

namespace vgpu::host::reference {

namespace {

// Attributes are ints; a few properties are size_t.
int32_t as_int(uint64_t v) { return static_cast<int32_t>(std::min<uint64_t>(v, INT_MAX)); }

}  // namespace

cudaDeviceProp make_properties(const reference_options& opts) {
  cudaDeviceProp p;
  std::memset(&p, 0, sizeof p);  // every field this device has no figure for reads 0
  std::strncpy(p.name, kDeviceName, sizeof p.name - 1);
  // A fixed, recognisable, non-zero UUID: programs that key caches on it must
  // see the same device each run.
  for (size_t i = 0; i < sizeof p.uuid.bytes; ++i) {
    p.uuid.bytes[i] = static_cast<char>(0xa0 + i);
  }
  p.totalGlobalMem = opts.memory_bytes;
  // The limits of an sm_90 part with one multiprocessor: programs size their
  // launches from these, and the reference must accept what they then ask.
  p.sharedMemPerBlock = 49152;
  p.regsPerBlock = 65536;
  p.warpSize = 32;
  p.memPitch = INT_MAX;
  p.maxThreadsPerBlock = 1024;
  p.maxThreadsDim[0] = 1024;
  p.maxThreadsDim[1] = 1024;
  p.maxThreadsDim[2] = 64;
  p.maxGridSize[0] = INT_MAX;
  p.maxGridSize[1] = 65535;
  p.maxGridSize[2] = 65535;
  p.totalConstMem = 65536;
  p.major = 9;
  p.minor = 0;
  p.textureAlignment = 512;
  p.texturePitchAlignment = 32;
  p.multiProcessorCount = 1;
  p.integrated = 0;
  p.canMapHostMemory = 1;
  p.surfaceAlignment = 512;
  p.concurrentKernels = 1;
  p.asyncEngineCount = 2;
  p.unifiedAddressing = 1;
  p.l2CacheSize = 4 << 20;
  p.maxThreadsPerMultiProcessor = 2048;
  p.streamPrioritiesSupported = 1;
  p.globalL1CacheSupported = 1;
  p.localL1CacheSupported = 1;
  p.sharedMemPerMultiprocessor = 233472;
  p.regsPerMultiprocessor = 65536;
  p.sharedMemPerBlockOptin = 232448;
  p.maxBlocksPerMultiProcessor = 32;
  p.reservedSharedMemPerBlock = 1024;
  // No NUMA node to speak of: CUDA reports -1 then.
  p.deviceNumaId = -1;
  p.hostNumaId = -1;
  return p;
}

cudaError_t device_attribute(const cudaDeviceProp& p, int32_t attr, int32_t* value) {
  if (attr < 1 || attr >= static_cast<int32_t>(cudaDevAttrMax)) return cudaErrorInvalidValue;
  int32_t v = 0;
  switch (static_cast<cudaDeviceAttr>(attr)) {
    case cudaDevAttrMaxThreadsPerBlock: v = p.maxThreadsPerBlock; break;
    case cudaDevAttrMaxBlockDimX: v = p.maxThreadsDim[0]; break;
    case cudaDevAttrMaxBlockDimY: v = p.maxThreadsDim[1]; break;
    case cudaDevAttrMaxBlockDimZ: v = p.maxThreadsDim[2]; break;
    case cudaDevAttrMaxGridDimX: v = p.maxGridSize[0]; break;
    case cudaDevAttrMaxGridDimY: v = p.maxGridSize[1]; break;
    case cudaDevAttrMaxGridDimZ: v = p.maxGridSize[2]; break;
    case cudaDevAttrMaxSharedMemoryPerBlock: v = as_int(p.sharedMemPerBlock); break;
    case cudaDevAttrTotalConstantMemory: v = as_int(p.totalConstMem); break;
    case cudaDevAttrWarpSize: v = p.warpSize; break;
    case cudaDevAttrMaxPitch: v = as_int(p.memPitch); break;
    case cudaDevAttrMaxRegistersPerBlock: v = p.regsPerBlock; break;
    case cudaDevAttrTextureAlignment: v = as_int(p.textureAlignment); break;
    case cudaDevAttrGpuOverlap: v = p.asyncEngineCount > 0 ? 1 : 0; break;
    case cudaDevAttrMultiProcessorCount: v = p.multiProcessorCount; break;
    case cudaDevAttrIntegrated: v = p.integrated; break;
    case cudaDevAttrCanMapHostMemory: v = p.canMapHostMemory; break;
    case cudaDevAttrSurfaceAlignment: v = as_int(p.surfaceAlignment); break;
    case cudaDevAttrConcurrentKernels: v = p.concurrentKernels; break;
    case cudaDevAttrEccEnabled: v = p.ECCEnabled; break;
    case cudaDevAttrPciBusId: v = p.pciBusID; break;
    case cudaDevAttrPciDeviceId: v = p.pciDeviceID; break;
    case cudaDevAttrPciDomainId: v = p.pciDomainID; break;
    case cudaDevAttrTccDriver: v = p.tccDriver; break;
    case cudaDevAttrGlobalMemoryBusWidth: v = p.memoryBusWidth; break;
    case cudaDevAttrL2CacheSize: v = p.l2CacheSize; break;
    case cudaDevAttrMaxThreadsPerMultiProcessor: v = p.maxThreadsPerMultiProcessor; break;
    case cudaDevAttrAsyncEngineCount: v = p.asyncEngineCount; break;
    case cudaDevAttrUnifiedAddressing: v = p.unifiedAddressing; break;
    case cudaDevAttrTexturePitchAlignment: v = as_int(p.texturePitchAlignment); break;
    case cudaDevAttrComputeCapabilityMajor: v = p.major; break;
    case cudaDevAttrComputeCapabilityMinor: v = p.minor; break;
    case cudaDevAttrStreamPrioritiesSupported: v = p.streamPrioritiesSupported; break;
    case cudaDevAttrGlobalL1CacheSupported: v = p.globalL1CacheSupported; break;
    case cudaDevAttrLocalL1CacheSupported: v = p.localL1CacheSupported; break;
    case cudaDevAttrMaxSharedMemoryPerMultiprocessor: v = as_int(p.sharedMemPerMultiprocessor); break;
    case cudaDevAttrMaxRegistersPerMultiprocessor: v = p.regsPerMultiprocessor; break;
    case cudaDevAttrManagedMemory: v = p.managedMemory; break;
    case cudaDevAttrIsMultiGpuBoard: v = p.isMultiGpuBoard; break;
    case cudaDevAttrCooperativeLaunch: v = p.cooperativeLaunch; break;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: v = as_int(p.sharedMemPerBlockOptin); break;
    case cudaDevAttrMaxBlocksPerMultiprocessor: v = p.maxBlocksPerMultiProcessor; break;
    case cudaDevAttrMaxPersistingL2CacheSize: v = p.persistingL2CacheMaxSize; break;
    case cudaDevAttrReservedSharedMemoryPerBlock: v = as_int(p.reservedSharedMemPerBlock); break;
    case cudaDevAttrNumaId: v = p.deviceNumaId; break;
    case cudaDevAttrHostNumaId: v = p.hostNumaId; break;
    default: v = 0; break;  // a valid attribute this device has no figure for
  }
  *value = v;
  return cudaSuccess;
}

}  // namespace vgpu::host::reference
