// cublasLtMatmulDesc*, cublasLtMatrixLayout*, cublasLtMatmulPreference*: the
// guest-side mirrors (lt_objects.h). Attribute sizes and defaults follow
// cublasLt.h; an attribute vgpu does not carry to the host is refused with
// CUBLAS_STATUS_NOT_SUPPORTED and one log line, never silently dropped.
#include <cstring>
#include <new>

#include "shim/cublaslt/lt_objects.h"
#include "shim/transport/library_unsupported.h"

namespace vgpu::shim::lt {

namespace {

// Where an attribute lives in a mirror, and its size in bytes.
struct field {
  void* at = nullptr;
  size_t size = 0;
};

field desc_field(protocol::lt::matmul_desc& d, cublasLtMatmulDescAttributes_t a) {
  switch (a) {
    case CUBLASLT_MATMUL_DESC_COMPUTE_TYPE: return {&d.compute_type, 4};
    case CUBLASLT_MATMUL_DESC_SCALE_TYPE: return {&d.scale_type, 4};
    case CUBLASLT_MATMUL_DESC_POINTER_MODE: return {&d.pointer_mode, 4};
    case CUBLASLT_MATMUL_DESC_TRANSA: return {&d.transa, 4};
    case CUBLASLT_MATMUL_DESC_TRANSB: return {&d.transb, 4};
    case CUBLASLT_MATMUL_DESC_TRANSC: return {&d.transc, 4};
    case CUBLASLT_MATMUL_DESC_FILL_MODE: return {&d.fill_mode, 4};
    case CUBLASLT_MATMUL_DESC_EPILOGUE: return {&d.epilogue, 4};
    case CUBLASLT_MATMUL_DESC_BIAS_POINTER: return {&d.bias_pointer, 8};
    case CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE: return {&d.bias_batch_stride, 8};
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER: return {&d.aux_pointer, 8};
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD: return {&d.aux_ld, 8};
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_BATCH_STRIDE: return {&d.aux_batch_stride, 8};
    case CUBLASLT_MATMUL_DESC_ALPHA_VECTOR_BATCH_STRIDE: return {&d.alpha_vector_batch_stride, 8};
    case CUBLASLT_MATMUL_DESC_SM_COUNT_TARGET: return {&d.sm_count_target, 4};
    case CUBLASLT_MATMUL_DESC_A_SCALE_POINTER: return {&d.a_scale_pointer, 8};
    case CUBLASLT_MATMUL_DESC_B_SCALE_POINTER: return {&d.b_scale_pointer, 8};
    case CUBLASLT_MATMUL_DESC_C_SCALE_POINTER: return {&d.c_scale_pointer, 8};
    case CUBLASLT_MATMUL_DESC_D_SCALE_POINTER: return {&d.d_scale_pointer, 8};
    case CUBLASLT_MATMUL_DESC_AMAX_D_POINTER: return {&d.amax_d_pointer, 8};
    case CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_DATA_TYPE: return {&d.aux_data_type, 4};
    case CUBLASLT_MATMUL_DESC_FAST_ACCUM: return {&d.fast_accum, 1};
    case CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE: return {&d.bias_data_type, 4};
    default: return {};
  }
}

field layout_field(protocol::lt::layout& l, cublasLtMatrixLayoutAttribute_t a) {
  switch (a) {
    case CUBLASLT_MATRIX_LAYOUT_TYPE: return {&l.type, 4};
    case CUBLASLT_MATRIX_LAYOUT_ORDER: return {&l.order, 4};
    case CUBLASLT_MATRIX_LAYOUT_ROWS: return {&l.rows, 8};
    case CUBLASLT_MATRIX_LAYOUT_COLS: return {&l.cols, 8};
    case CUBLASLT_MATRIX_LAYOUT_LD: return {&l.ld, 8};
    case CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT: return {&l.batch_count, 4};
    case CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET: return {&l.batch_stride, 8};
    case CUBLASLT_MATRIX_LAYOUT_PLANE_OFFSET: return {&l.plane_offset, 8};
    case CUBLASLT_MATRIX_LAYOUT_BATCH_MODE: return {&l.batch_mode, 4};
    default: return {};
  }
}

field pref_field(protocol::lt::preference& p, cublasLtMatmulPreferenceAttributes_t a) {
  switch (a) {
    case CUBLASLT_MATMUL_PREF_SEARCH_MODE: return {&p.search_mode, 4};
    case CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES: return {&p.max_workspace_bytes, 8};
    case CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK: return {&p.reduction_scheme_mask, 4};
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES: return {&p.min_alignment_a, 4};
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES: return {&p.min_alignment_b, 4};
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES: return {&p.min_alignment_c, 4};
    case CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES: return {&p.min_alignment_d, 4};
    case CUBLASLT_MATMUL_PREF_MAX_WAVES_COUNT: return {&p.max_waves_count, 4};
    case CUBLASLT_MATMUL_PREF_IMPL_MASK: return {&p.impl_mask, 8};
    default: return {};
  }
}

cublasStatus_t unsupported_attribute(const char* what) {
  return static_cast<cublasStatus_t>(
      library_not_supported("cublasLt", what, CUBLAS_STATUS_NOT_SUPPORTED));
}

// cublasLt's Set rule: the buffer must hold exactly the attribute's size.
cublasStatus_t set_field(field f, const void* buf, size_t size, const char* what) {
  if (!f.at) return unsupported_attribute(what);
  if (!buf || size != f.size) return CUBLAS_STATUS_INVALID_VALUE;
  std::memcpy(f.at, buf, size);
  return CUBLAS_STATUS_SUCCESS;
}

// cublasLt's Get rule: size 0 asks how many bytes the attribute needs;
// otherwise the buffer must be exactly that size.
cublasStatus_t get_field(field f, void* buf, size_t size, size_t* written, const char* what) {
  if (!f.at) return unsupported_attribute(what);
  if (size == 0) {
    if (!written) return CUBLAS_STATUS_INVALID_VALUE;
    *written = f.size;
    return CUBLAS_STATUS_SUCCESS;
  }
  if (!buf || size != f.size) return CUBLAS_STATUS_INVALID_VALUE;
  std::memcpy(buf, f.at, f.size);
  if (written) *written = f.size;
  return CUBLAS_STATUS_SUCCESS;
}

template <typename Mirror, typename Opaque>
Mirror* checked(Opaque* o, uint32_t magic) {
  if (!o) return nullptr;
  auto* m = std::launder(reinterpret_cast<Mirror*>(o));
  return m->magic == magic ? m : nullptr;
}

}  // namespace

desc_mirror* mirror_of(cublasLtMatmulDesc_t desc) { return checked<desc_mirror>(desc, kDescMagic); }
layout_mirror* mirror_of(cublasLtMatrixLayout_t layout) {
  return checked<layout_mirror>(layout, kLayoutMagic);
}
pref_mirror* mirror_of(cublasLtMatmulPreference_t pref) { return checked<pref_mirror>(pref, kPrefMagic); }

}  // namespace vgpu::shim::lt

using vgpu::shim::lt::desc_mirror;
using vgpu::shim::lt::layout_mirror;
using vgpu::shim::lt::pref_mirror;
using vgpu::shim::lt::mirror_of;

// --- matmul descriptors ---------------------------------------------------------

extern "C" cublasStatus_t cublasLtMatmulDescInit_internal(cublasLtMatmulDesc_t desc, size_t size,
                                                          cublasComputeType_t computeType,
                                                          cudaDataType_t scaleType) {
  if (!desc || size < sizeof(cublasLtMatmulDescOpaque_t)) return CUBLAS_STATUS_INVALID_VALUE;
  auto* m = new (desc) desc_mirror{vgpu::shim::lt::kDescMagic, 0, {}};
  m->d.compute_type = computeType;
  m->d.scale_type = scaleType;
  return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasLtMatmulDescCreate(cublasLtMatmulDesc_t* desc, cublasComputeType_t computeType,
                                                   cudaDataType_t scaleType) {
  if (!desc) return CUBLAS_STATUS_INVALID_VALUE;
  auto* storage = new (std::nothrow) cublasLtMatmulDescOpaque_t{};
  if (!storage) return CUBLAS_STATUS_ALLOC_FAILED;
  cublasLtMatmulDescInit_internal(storage, sizeof *storage, computeType, scaleType);
  *desc = storage;
  return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasLtMatmulDescDestroy(cublasLtMatmulDesc_t desc) {
  if (!desc) return CUBLAS_STATUS_SUCCESS;  // as destroying NULL is for cuBLASLt
  if (!mirror_of(desc)) return CUBLAS_STATUS_INVALID_VALUE;
  mirror_of(desc)->magic = 0;  // a second Destroy is caught, not a double free
  delete desc;
  return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasLtMatmulDescSetAttribute(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr,
                                                         const void* buf, size_t sizeInBytes) {
  desc_mirror* m = mirror_of(desc);
  if (!m) return CUBLAS_STATUS_INVALID_VALUE;
  return vgpu::shim::lt::set_field(vgpu::shim::lt::desc_field(m->d, attr), buf, sizeInBytes,
                                   "cublasLtMatmulDescSetAttribute (this attribute)");
}

extern "C" cublasStatus_t cublasLtMatmulDescGetAttribute(cublasLtMatmulDesc_t desc, cublasLtMatmulDescAttributes_t attr,
                                                         void* buf, size_t sizeInBytes, size_t* sizeWritten) {
  desc_mirror* m = mirror_of(desc);
  if (!m) return CUBLAS_STATUS_INVALID_VALUE;
  return vgpu::shim::lt::get_field(vgpu::shim::lt::desc_field(m->d, attr), buf, sizeInBytes, sizeWritten,
                                   "cublasLtMatmulDescGetAttribute (this attribute)");
}

// --- matrix layouts -----------------------------------------------------------------

extern "C" cublasStatus_t cublasLtMatrixLayoutInit_internal(cublasLtMatrixLayout_t layout, size_t size,
                                                            cudaDataType type, uint64_t rows, uint64_t cols,
                                                            int64_t ld) {
  if (!layout || size < sizeof(cublasLtMatrixLayoutOpaque_t)) return CUBLAS_STATUS_INVALID_VALUE;
  auto* m = new (layout) layout_mirror{vgpu::shim::lt::kLayoutMagic, 0, {}};
  m->l.type = static_cast<uint32_t>(type);
  m->l.rows = rows;
  m->l.cols = cols;
  m->l.ld = ld;
  return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasLtMatrixLayoutCreate(cublasLtMatrixLayout_t* layout, cudaDataType type, uint64_t rows,
                                                     uint64_t cols, int64_t ld) {
  if (!layout) return CUBLAS_STATUS_INVALID_VALUE;
  auto* storage = new (std::nothrow) cublasLtMatrixLayoutOpaque_t{};
  if (!storage) return CUBLAS_STATUS_ALLOC_FAILED;
  cublasLtMatrixLayoutInit_internal(storage, sizeof *storage, type, rows, cols, ld);
  *layout = storage;
  return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasLtMatrixLayoutDestroy(cublasLtMatrixLayout_t layout) {
  if (!layout) return CUBLAS_STATUS_SUCCESS;
  if (!mirror_of(layout)) return CUBLAS_STATUS_INVALID_VALUE;
  mirror_of(layout)->magic = 0;
  delete layout;
  return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasLtMatrixLayoutSetAttribute(cublasLtMatrixLayout_t layout,
                                                           cublasLtMatrixLayoutAttribute_t attr, const void* buf,
                                                           size_t sizeInBytes) {
  layout_mirror* m = mirror_of(layout);
  if (!m) return CUBLAS_STATUS_INVALID_VALUE;
  return vgpu::shim::lt::set_field(vgpu::shim::lt::layout_field(m->l, attr), buf, sizeInBytes,
                                   "cublasLtMatrixLayoutSetAttribute (this attribute)");
}

extern "C" cublasStatus_t cublasLtMatrixLayoutGetAttribute(cublasLtMatrixLayout_t layout,
                                                           cublasLtMatrixLayoutAttribute_t attr, void* buf,
                                                           size_t sizeInBytes, size_t* sizeWritten) {
  layout_mirror* m = mirror_of(layout);
  if (!m) return CUBLAS_STATUS_INVALID_VALUE;
  return vgpu::shim::lt::get_field(vgpu::shim::lt::layout_field(m->l, attr), buf, sizeInBytes, sizeWritten,
                                   "cublasLtMatrixLayoutGetAttribute (this attribute)");
}

// --- preferences ------------------------------------------------------------------------

extern "C" cublasStatus_t cublasLtMatmulPreferenceInit_internal(cublasLtMatmulPreference_t pref, size_t size) {
  if (!pref || size < sizeof(cublasLtMatmulPreferenceOpaque_t)) return CUBLAS_STATUS_INVALID_VALUE;
  new (pref) pref_mirror{vgpu::shim::lt::kPrefMagic, 0, {}};
  return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasLtMatmulPreferenceCreate(cublasLtMatmulPreference_t* pref) {
  if (!pref) return CUBLAS_STATUS_INVALID_VALUE;
  auto* storage = new (std::nothrow) cublasLtMatmulPreferenceOpaque_t{};
  if (!storage) return CUBLAS_STATUS_ALLOC_FAILED;
  cublasLtMatmulPreferenceInit_internal(storage, sizeof *storage);
  *pref = storage;
  return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasLtMatmulPreferenceDestroy(cublasLtMatmulPreference_t pref) {
  if (!pref) return CUBLAS_STATUS_SUCCESS;
  if (!mirror_of(pref)) return CUBLAS_STATUS_INVALID_VALUE;
  mirror_of(pref)->magic = 0;
  delete pref;
  return CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasLtMatmulPreferenceSetAttribute(cublasLtMatmulPreference_t pref,
                                                               cublasLtMatmulPreferenceAttributes_t attr,
                                                               const void* buf, size_t sizeInBytes) {
  pref_mirror* m = mirror_of(pref);
  if (!m) return CUBLAS_STATUS_INVALID_VALUE;
  return vgpu::shim::lt::set_field(vgpu::shim::lt::pref_field(m->p, attr), buf, sizeInBytes,
                                   "cublasLtMatmulPreferenceSetAttribute (this attribute)");
}

extern "C" cublasStatus_t cublasLtMatmulPreferenceGetAttribute(cublasLtMatmulPreference_t pref,
                                                               cublasLtMatmulPreferenceAttributes_t attr, void* buf,
                                                               size_t sizeInBytes, size_t* sizeWritten) {
  pref_mirror* m = mirror_of(pref);
  if (!m) return CUBLAS_STATUS_INVALID_VALUE;
  return vgpu::shim::lt::get_field(vgpu::shim::lt::pref_field(m->p, attr), buf, sizeInBytes, sizeWritten,
                                   "cublasLtMatmulPreferenceGetAttribute (this attribute)");
}
