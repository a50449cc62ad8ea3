// The guest's cuBLASLt objects. Descriptors are mirrors of their attributes,
// built inside NVIDIA's opaque storage types (a program may allocate those
// itself and call the *Init functions), so that creating and setting them
// costs no round trip; cublasLtMatmul and the heuristic send them whole.
#pragma once

#include <cstdint>

#include <cublasLt.h>

#include "protocol/cublaslt_wire.h"

namespace vgpu::shim::lt {

// First word of every mirror: tells an initialised descriptor from garbage.
inline constexpr uint32_t kDescMagic = 0x4c54444du;    // "MDTL"
inline constexpr uint32_t kLayoutMagic = 0x4c544c59u;  // "YLTL"
inline constexpr uint32_t kPrefMagic = 0x4c545046u;    // "FPTL"
inline constexpr uint64_t kHandleMagic = 0x766770754c74484full;

struct desc_mirror {
  uint32_t magic;
  uint32_t pad;
  protocol::lt::matmul_desc d;
};
struct layout_mirror {
  uint32_t magic;
  uint32_t pad;
  protocol::lt::layout l;
};
struct pref_mirror {
  uint32_t magic;
  uint32_t pad;
  protocol::lt::preference p;
};
static_assert(sizeof(desc_mirror) <= sizeof(cublasLtMatmulDescOpaque_t));
static_assert(sizeof(layout_mirror) <= sizeof(cublasLtMatrixLayoutOpaque_t));
static_assert(sizeof(pref_mirror) <= sizeof(cublasLtMatmulPreferenceOpaque_t));

// The mirror inside an initialised descriptor, or nullptr (NULL or never
// initialised: the caller answers CUBLAS_STATUS_INVALID_VALUE).
desc_mirror* mirror_of(cublasLtMatmulDesc_t desc);
layout_mirror* mirror_of(cublasLtMatrixLayout_t layout);
pref_mirror* mirror_of(cublasLtMatmulPreference_t pref);

// What a cublasLtHandle_t points to: the host's handle id.
struct handle_object {
  uint64_t magic = kHandleMagic;
  uint64_t host_id = 0;
};
// The host id behind a handle cublasLtCreate made, or 0.
uint64_t own_handle(cublasLtHandle_t handle);
// The id a call sends: that of our own handle, or of a live cuBLAS handle
// (tagged, protocol::lt::kBlasHandleTag); 0 for NULL or a pointer that is neither.
uint64_t host_handle(cublasLtHandle_t handle);

}  // namespace vgpu::shim::lt
