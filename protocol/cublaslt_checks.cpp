#include "protocol/cublaslt_checks.h"

#include <cstdint>
#include <utility>

namespace vgpu::protocol::lt {

namespace {

bool fail(std::string* why, std::string msg) {
  if (why) *why = std::move(msg);
  return false;
}

}  // namespace

bool layout_elements(const layout& l, uint64_t* elements, std::string* why) {
  if (l.rows == 0 || l.cols == 0) {
    *elements = 0;
    return true;
  }
  const bool col = l.order == CUBLASLT_ORDER_COL;
  const uint64_t inner = col ? l.rows : l.cols, outer = col ? l.cols : l.rows;
  if (l.ld < 0 || static_cast<uint64_t>(l.ld) < inner)
    return fail(why, "leading dimension smaller than the matrix");
  uint64_t span = 0, extra = 0;
  if (__builtin_mul_overflow(outer - 1, static_cast<uint64_t>(l.ld), &span) ||
      __builtin_add_overflow(span, inner, &span))
    return fail(why, "matrix size overflows");
  if (l.batch_count > 1 && (__builtin_mul_overflow(static_cast<uint64_t>(l.batch_count - 1),
                                                   static_cast<uint64_t>(l.batch_stride), &extra) ||
                            __builtin_add_overflow(span, extra, &span)))
    return fail(why, "batch size overflows");
  // Its bytes (at most 16 per element) must fit a signed 64-bit offset.
  if (span > static_cast<uint64_t>(INT64_MAX) / 16) return fail(why, "matrix size overflows");
  *elements = span;
  return true;
}

uint64_t element_bytes(int32_t type) {
  switch (type) {
    case CUDA_R_8I:
    case CUDA_R_8U:
    case CUDA_R_8F_E4M3:
    case CUDA_R_8F_E5M2: return 1;
    case CUDA_R_16F:
    case CUDA_R_16BF: return 2;
    case CUDA_R_32F:
    case CUDA_R_32I: return 4;
    case CUDA_R_64F:
    case CUDA_C_32F: return 8;
    case CUDA_C_64F: return 16;
    default: return 0;
  }
}

uint64_t scale_bytes(int32_t scale_type) {
  switch (scale_type) {
    case CUDA_R_16F:
    case CUDA_R_16BF: return 2;
    case CUDA_R_32F:
    case CUDA_R_32I: return 4;
    case CUDA_R_64F:
    case CUDA_C_32F: return 8;
    case CUDA_C_64F: return 16;
    default: return 0;
  }
}

uint64_t bias_element_bytes(const matmul_desc& d, const layout& a, const layout& dl) {
  if (d.bias_data_type != -1) return element_bytes(d.bias_data_type);
  auto fp8 = [](uint32_t t) { return t == CUDA_R_8F_E4M3 || t == CUDA_R_8F_E5M2; };
  if (fp8(a.type) || fp8(dl.type)) return 4;
  if (d.compute_type == CUBLAS_COMPUTE_32I || d.compute_type == CUBLAS_COMPUTE_32I_PEDANTIC)
    return scale_bytes(d.scale_type);
  return element_bytes(static_cast<int32_t>(dl.type));
}

bool epilogue_supported(uint32_t e) {
  switch (e) {
    case CUBLASLT_EPILOGUE_DEFAULT:
    case CUBLASLT_EPILOGUE_RELU:
    case CUBLASLT_EPILOGUE_BIAS:
    case CUBLASLT_EPILOGUE_RELU_BIAS:
    case CUBLASLT_EPILOGUE_GELU:
    case CUBLASLT_EPILOGUE_GELU_BIAS: return true;
    default: return false;
  }
}

bool epilogue_has_bias(uint32_t e) { return (e & CUBLASLT_EPILOGUE_BIAS) != 0; }

cublasStatus_t check_problem(const matmul_desc& d, const layout& a,
                             const layout& b, const layout& c,
                             const layout& dl, shape* out, std::string* why) {
  const layout* all[] = {&a, &b, &c, &dl};
  for (const auto* l : all) {
    if (l->order != CUBLASLT_ORDER_COL && l->order != CUBLASLT_ORDER_ROW) {
      fail(why, "only column- and row-major layouts are remoted");
      return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    if (l->batch_mode != 0 || l->plane_offset != 0) {
      fail(why, "pointer-array batches and planar complex are not remoted");
      return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    if (element_bytes(static_cast<int32_t>(l->type)) == 0) {
      fail(why, "unknown matrix data type");
      return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    if (l->batch_count < 1 || l->batch_stride < 0) {
      fail(why, "batch count below 1 or negative batch stride");
      return CUBLAS_STATUS_INVALID_VALUE;
    }
    uint64_t elements = 0;
    if (!layout_elements(*l, &elements, why)) return CUBLAS_STATUS_INVALID_VALUE;
  }
  auto op_ok = [](int32_t t) { return t == CUBLAS_OP_N || t == CUBLAS_OP_T || t == CUBLAS_OP_C; };
  if (!op_ok(d.transa) || !op_ok(d.transb) || d.transc != CUBLAS_OP_N) {
    fail(why, "bad TRANSA/TRANSB or TRANSC other than N");
    return d.transc != CUBLAS_OP_N && op_ok(d.transc) ? CUBLAS_STATUS_NOT_SUPPORTED : CUBLAS_STATUS_INVALID_VALUE;
  }
  const uint64_t m = dl.rows, n = dl.cols;
  const uint64_t am = d.transa == CUBLAS_OP_N ? a.rows : a.cols, ak = d.transa == CUBLAS_OP_N ? a.cols : a.rows;
  const uint64_t bk = d.transb == CUBLAS_OP_N ? b.rows : b.cols, bn = d.transb == CUBLAS_OP_N ? b.cols : b.rows;
  if (am != m || bn != n || ak != bk || c.rows != m || c.cols != n) {
    fail(why, "the shapes of A, B, C and D do not agree");
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  if (a.batch_count != dl.batch_count || b.batch_count != dl.batch_count || c.batch_count != dl.batch_count) {
    fail(why, "batch counts differ");
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  // C's type may differ from D's only for an FP8 D (cuBLASLt's FP8 matmuls).
  const bool fp8_d = dl.type == CUDA_R_8F_E4M3 || dl.type == CUDA_R_8F_E5M2;
  if (c.type != dl.type && !fp8_d) {
    fail(why, "C and D types differ");
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  if (!epilogue_supported(d.epilogue)) {
    fail(why, "this epilogue is not remoted");
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  if (d.pointer_mode != CUBLASLT_POINTER_MODE_HOST && d.pointer_mode != CUBLASLT_POINTER_MODE_DEVICE) {
    fail(why, "vector pointer modes are not remoted");
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  if (scale_bytes(d.scale_type) == 0) {
    fail(why, "unknown scale type");
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  if (epilogue_has_bias(d.epilogue)) {
    if (d.bias_pointer == 0 || bias_element_bytes(d, a, dl) == 0 || d.bias_batch_stride < 0) {
      fail(why, "bias epilogue without a bias pointer, or a bad bias type or stride");
      return CUBLAS_STATUS_INVALID_VALUE;
    }
  }
  out->m = m;
  out->n = n;
  out->k = ak;
  out->batch = dl.batch_count;
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace vgpu::protocol::lt
