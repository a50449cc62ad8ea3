// The remoted cuBLAS on the reference executor: handles are host-side state,
// the arithmetic is the CPU BLAS (blas/ref_blas.h). Every operand is a device
// address of this session: its whole extent (from m/n/k, the leading
// dimension or increment, strides and batch) must lie inside one allocation
// before any byte is read. Everything runs at once, in call order, so a
// posted call is simply a call whose failure the worker keeps for later.
#include <cstring>
#include <string>
#include <vector>

#include <spdlog/spdlog.h>

#include "actors/executor/reference/blas/blas_internal.h"
#include "actors/executor/reference/blas/ref_blas.h"
#include "actors/executor/reference/reference_session.h"
#include "protocol/blas_shapes.h"

namespace vgpu::host::reference {

namespace {

namespace shapes = protocol::blas;
using blas::dtype;

bool to_dtype(int32_t t, dtype* out) {
  switch (t) {
    case CUDA_R_16F: *out = dtype::f16; return true;
    case CUDA_R_16BF: *out = dtype::bf16; return true;
    case CUDA_R_32F: *out = dtype::f32; return true;
    case CUDA_R_64F: *out = dtype::f64; return true;
    case CUDA_C_32F: *out = dtype::c32; return true;
    case CUDA_C_64F: *out = dtype::c64; return true;
    case CUDA_R_8I: *out = dtype::i8; return true;
    case CUDA_R_32I: *out = dtype::i32; return true;
    default: return false;
  }
}

// The precision the CPU BLAS computes a GEMM in, from cuBLAS's compute type.
bool compute_dtype(int32_t compute, int32_t ctype, dtype* out) {
  const int32_t st = shapes::gemm_scalar_type(compute, ctype);
  if (st < 0) return false;
  if (st == CUDA_R_16F) return to_dtype(CUDA_R_32F, out);  // half compute: float is close enough here
  return to_dtype(st, out);
}

bool to_op(int32_t o, blas::op* out) {
  switch (o) {
    case CUBLAS_OP_N: *out = blas::op::n; return true;
    case CUBLAS_OP_T: *out = blas::op::t; return true;
    case CUBLAS_OP_C: *out = blas::op::c; return true;
    default: return false;
  }
}

cublasStatus_t invalid(const char* call, const call_context& ctx, const std::string& why) {
  spdlog::debug("[reference-executor] {}: {} (vm={})", call, why, ctx.vm_id);
  return CUBLAS_STATUS_INVALID_VALUE;
}

}  // namespace

uint8_t* reference_session::blas_bytes(const char* call, const call_context& ctx, uint64_t ptr,
                                       uint64_t len) {
  static uint8_t placeholder;
  if (len == 0) return &placeholder;
  if (check_range(call, ctx, ptr, len) != cudaSuccess) return nullptr;
  return host_at(ptr);
}

// --- handles ----------------------------------------------------------------------

cublasStatus_t reference_session::on_vgpuBlasCreate(call_context&, uint64_t* handle) {
  *handle = blas_handles_.add(blas_handle{});
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t reference_session::on_vgpuBlasDestroy(call_context&, uint64_t handle) {
  return blas_handles_.erase(handle) ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_INITIALIZED;
}

cublasStatus_t reference_session::on_vgpuBlasSetStream(call_context&, uint64_t handle,
                                                       uint64_t stream) {
  blas_handle* h = blas_handles_.find(handle);
  if (h == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (!stream_ok(stream)) return CUBLAS_STATUS_INVALID_VALUE;
  h->stream = stream;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t reference_session::on_vgpuBlasSetWorkspace(call_context& ctx, uint64_t handle,
                                                          uint64_t workspace, uint64_t bytes) {
  blas_handle* h = blas_handles_.find(handle);
  if (h == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (bytes != 0 && blas_bytes("cublasSetWorkspace", ctx, workspace, bytes) == nullptr)
    return CUBLAS_STATUS_INVALID_VALUE;
  h->workspace = workspace;
  h->workspace_bytes = bytes;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t reference_session::on_vgpuBlasSetMathMode(call_context&, uint64_t handle,
                                                         int32_t mode) {
  blas_handle* h = blas_handles_.find(handle);
  if (h == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  h->math_mode = mode;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t reference_session::on_vgpuBlasSetAtomicsMode(call_context&, uint64_t handle,
                                                            int32_t mode) {
  blas_handle* h = blas_handles_.find(handle);
  if (h == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  h->atomics_mode = mode;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t reference_session::on_vgpuBlasGetVersion(call_context&, int32_t* version) {
  // No cuBLAS here: the version of the headers this executor was built with.
  *version = CUBLAS_VERSION;
  return CUBLAS_STATUS_SUCCESS;
}

// --- GEMM ---------------------------------------------------------------------------

cublasStatus_t reference_session::on_vgpuBlasGemm(
    call_context& ctx, uint64_t handle, int32_t transa, int32_t transb, int64_t m, int64_t n,
    int64_t k, protocol::scalar16 alpha, uint64_t A, int32_t Atype, int64_t lda, int64_t strideA,
    uint64_t B, int32_t Btype, int64_t ldb, int64_t strideB, protocol::scalar16 beta, uint64_t C,
    int32_t Ctype, int64_t ldc, int64_t strideC, int64_t batch, int32_t computeType, int32_t,
    uint32_t flags) {
  static constexpr const char* kCall = "cublasGemm";
  if (blas_handles_.find(handle) == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  blas::op ta, tb;
  dtype at, bt, ct, comp, st;
  if (!to_op(transa, &ta) || !to_op(transb, &tb) || m < 0 || n < 0 || k < 0 || batch < 1)
    return invalid(kCall, ctx, "bad operation or size");
  if (!to_dtype(Atype, &at) || !to_dtype(Btype, &bt) || !to_dtype(Ctype, &ct) ||
      !compute_dtype(computeType, Ctype, &comp) ||
      !to_dtype(shapes::gemm_scalar_type(computeType, Ctype), &st))
    return CUBLAS_STATUS_NOT_SUPPORTED;
  const uint32_t ea = shapes::element_size(Atype), eb = shapes::element_size(Btype),
                 ec = shapes::element_size(Ctype);
  const int64_t arows = ta == blas::op::n ? m : k, acols = ta == blas::op::n ? k : m;
  const int64_t brows = tb == blas::op::n ? k : n, bcols = tb == blas::op::n ? n : k;
  uint64_t abytes, bbytes, cbytes;
  if (!shapes::matrix_bytes(arows, acols, lda, ea, &abytes) ||
      !shapes::matrix_bytes(brows, bcols, ldb, eb, &bbytes) ||
      !shapes::matrix_bytes(m, n, ldc, ec, &cbytes))
    return invalid(kCall, ctx, "bad leading dimension");
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  if (k == 0) abytes = bbytes = 0;  // A and B are not read; C = beta C

  // Scalars: by value, or (device pointer mode) at device addresses.
  const uint32_t ssize = shapes::element_size(shapes::gemm_scalar_type(computeType, Ctype));
  const uint8_t* pa = alpha.bytes;
  const uint8_t* pb = beta.bytes;
  if (flags & shapes::kDevicePointerMode) {
    pa = blas_bytes(kCall, ctx, shapes::scalar_address(alpha), ssize);
    pb = blas_bytes(kCall, ctx, shapes::scalar_address(beta), ssize);
    if (pa == nullptr || pb == nullptr) return invalid(kCall, ctx, "scalar outside the session's memory");
  }
  const blas::scalar a_s = blas::load(pa, 0, st), b_s = blas::load(pb, 0, st);

  std::string why;
  if (flags & shapes::kPointerArrays) {
    const uint64_t list = static_cast<uint64_t>(batch) * sizeof(uint64_t);
    const uint8_t* la = blas_bytes(kCall, ctx, A, list);
    const uint8_t* lb = blas_bytes(kCall, ctx, B, list);
    const uint8_t* lc = blas_bytes(kCall, ctx, C, list);
    if (la == nullptr || lb == nullptr || lc == nullptr)
      return invalid(kCall, ctx, "pointer array outside the session's memory");
    for (int64_t i = 0; i < batch; ++i) {
      uint64_t ai, bi, ci;
      std::memcpy(&ai, la + i * 8, 8);
      std::memcpy(&bi, lb + i * 8, 8);
      std::memcpy(&ci, lc + i * 8, 8);
      const uint8_t* ha = blas_bytes(kCall, ctx, ai, abytes);
      const uint8_t* hb = blas_bytes(kCall, ctx, bi, bbytes);
      uint8_t* hc = blas_bytes(kCall, ctx, ci, cbytes);
      if (ha == nullptr || hb == nullptr || hc == nullptr)
        return invalid(kCall, ctx, "batch member outside the session's memory");
      if (!blas::gemm(ta, tb, m, n, k, a_s, {ha, at, lda, 0}, {hb, bt, ldb, 0}, b_s, {hc, ct, ldc, 0},
                      comp, 1, &why))
        return invalid(kCall, ctx, why);
    }
    return CUBLAS_STATUS_SUCCESS;
  }
  uint64_t asp, bsp, csp;
  if (!shapes::strided_bytes(abytes, strideA, batch, ea, &asp) ||
      !shapes::strided_bytes(bbytes, strideB, batch, eb, &bsp) ||
      !shapes::strided_bytes(cbytes, strideC, batch, ec, &csp))
    return invalid(kCall, ctx, "bad stride");
  const uint8_t* ha = blas_bytes(kCall, ctx, A, asp);
  const uint8_t* hb = blas_bytes(kCall, ctx, B, bsp);
  uint8_t* hc = blas_bytes(kCall, ctx, C, csp);
  if (ha == nullptr || hb == nullptr || hc == nullptr)
    return invalid(kCall, ctx, "operand outside the session's memory");
  if (!blas::gemm(ta, tb, m, n, k, a_s, {ha, at, lda, strideA}, {hb, bt, ldb, strideB}, b_s,
                  {hc, ct, ldc, strideC}, comp, batch, &why))
    return invalid(kCall, ctx, why);
  return CUBLAS_STATUS_SUCCESS;
}

// --- level 1 and 2 ------------------------------------------------------------------

cublasStatus_t reference_session::on_vgpuBlasGemv(call_context& ctx, uint64_t handle,
                                                  int32_t trans, int64_t m, int64_t n,
                                                  protocol::scalar16 alpha, uint64_t A, int64_t lda,
                                                  uint64_t x, int64_t incx, protocol::scalar16 beta,
                                                  uint64_t y, int64_t incy, int32_t dtype_,
                                                  uint32_t flags) {
  static constexpr const char* kCall = "cublasGemv";
  if (blas_handles_.find(handle) == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  blas::op op;
  dtype t;
  if (!to_op(trans, &op) || !to_dtype(dtype_, &t)) return invalid(kCall, ctx, "bad operation or type");
  const uint32_t e = shapes::element_size(dtype_);
  const int64_t xl = op == blas::op::n ? n : m, yl = op == blas::op::n ? m : n;
  uint64_t ab, xb, yb;
  if (!shapes::matrix_bytes(m, n, lda, e, &ab) || !shapes::vector_bytes(xl, incx, e, &xb) ||
      !shapes::vector_bytes(yl, incy, e, &yb))
    return invalid(kCall, ctx, "bad size");
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  const uint8_t* pa = alpha.bytes;
  const uint8_t* pb = beta.bytes;
  if (flags & shapes::kDevicePointerMode) {
    pa = blas_bytes(kCall, ctx, shapes::scalar_address(alpha), e);
    pb = blas_bytes(kCall, ctx, shapes::scalar_address(beta), e);
    if (pa == nullptr || pb == nullptr) return invalid(kCall, ctx, "scalar outside the session's memory");
  }
  const uint8_t* ha = blas_bytes(kCall, ctx, A, ab);
  const uint8_t* hx = blas_bytes(kCall, ctx, x, xb);
  uint8_t* hy = blas_bytes(kCall, ctx, y, yb);
  if (ha == nullptr || hx == nullptr || hy == nullptr)
    return invalid(kCall, ctx, "operand outside the session's memory");
  std::string why;
  if (!blas::gemv(op, m, n, blas::load(pa, 0, t), ha, lda, hx, incx, blas::load(pb, 0, t), hy, incy, t, &why))
    return invalid(kCall, ctx, why);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t reference_session::on_vgpuBlasAxpy(call_context& ctx, uint64_t handle, int64_t n,
                                                  protocol::scalar16 alpha, uint64_t x, int64_t incx,
                                                  uint64_t y, int64_t incy, int32_t dtype_,
                                                  uint32_t flags) {
  static constexpr const char* kCall = "cublasAxpy";
  if (blas_handles_.find(handle) == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  dtype t;
  if (!to_dtype(dtype_, &t)) return invalid(kCall, ctx, "bad type");
  const uint32_t e = shapes::element_size(dtype_);
  uint64_t xb, yb;
  if (!shapes::vector_bytes(n, incx, e, &xb) || !shapes::vector_bytes(n, incy, e, &yb))
    return invalid(kCall, ctx, "bad size");
  if (n <= 0) return CUBLAS_STATUS_SUCCESS;
  const uint8_t* pa = alpha.bytes;
  if ((flags & shapes::kDevicePointerMode) &&
      (pa = blas_bytes(kCall, ctx, shapes::scalar_address(alpha), e)) == nullptr)
    return invalid(kCall, ctx, "scalar outside the session's memory");
  const uint8_t* hx = blas_bytes(kCall, ctx, x, xb);
  uint8_t* hy = blas_bytes(kCall, ctx, y, yb);
  if (hx == nullptr || hy == nullptr) return invalid(kCall, ctx, "operand outside the session's memory");
  std::string why;
  if (!blas::axpy(n, blas::load(pa, 0, t), hx, incx, hy, incy, t, &why)) return invalid(kCall, ctx, why);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t reference_session::on_vgpuBlasScal(call_context& ctx, uint64_t handle, int64_t n,
                                                  protocol::scalar16 alpha, uint64_t x, int64_t incx,
                                                  int32_t dtype_, uint32_t flags) {
  static constexpr const char* kCall = "cublasScal";
  if (blas_handles_.find(handle) == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  dtype t;
  if (!to_dtype(dtype_, &t)) return invalid(kCall, ctx, "bad type");
  const uint32_t e = shapes::element_size(dtype_);
  uint64_t xb;
  if (!shapes::vector_bytes(n, incx, e, &xb)) return invalid(kCall, ctx, "bad size");
  if (n <= 0) return CUBLAS_STATUS_SUCCESS;
  const uint8_t* pa = alpha.bytes;
  if ((flags & shapes::kDevicePointerMode) &&
      (pa = blas_bytes(kCall, ctx, shapes::scalar_address(alpha), e)) == nullptr)
    return invalid(kCall, ctx, "scalar outside the session's memory");
  uint8_t* hx = blas_bytes(kCall, ctx, x, xb);
  if (hx == nullptr) return invalid(kCall, ctx, "operand outside the session's memory");
  std::string why;
  if (!blas::scal(n, blas::load(pa, 0, t), hx, incx, t, &why)) return invalid(kCall, ctx, why);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t reference_session::on_vgpuBlasCopy(call_context& ctx, uint64_t handle, int64_t n,
                                                  uint64_t x, int64_t incx, uint64_t y, int64_t incy,
                                                  int32_t dtype_) {
  static constexpr const char* kCall = "cublasCopy";
  if (blas_handles_.find(handle) == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  dtype t;
  if (!to_dtype(dtype_, &t)) return invalid(kCall, ctx, "bad type");
  const uint32_t e = shapes::element_size(dtype_);
  uint64_t xb, yb;
  if (!shapes::vector_bytes(n, incx, e, &xb) || !shapes::vector_bytes(n, incy, e, &yb))
    return invalid(kCall, ctx, "bad size");
  if (n <= 0) return CUBLAS_STATUS_SUCCESS;
  const uint8_t* hx = blas_bytes(kCall, ctx, x, xb);
  uint8_t* hy = blas_bytes(kCall, ctx, y, yb);
  if (hx == nullptr || hy == nullptr) return invalid(kCall, ctx, "operand outside the session's memory");
  std::string why;
  if (!blas::copy(n, hx, incx, hy, incy, t, &why)) return invalid(kCall, ctx, why);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t reference_session::blas_reduce(call_context& ctx, uint64_t handle, int32_t op,
                                              int64_t n, uint64_t x, int64_t incx, uint64_t y,
                                              int64_t incy, int32_t dtype_,
                                              protocol::scalar16* result) {
  static constexpr const char* kCall = "cublasReduce";
  if (blas_handles_.find(handle) == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  dtype t;
  if (!to_dtype(dtype_, &t) || op < 0 || op > 3) return invalid(kCall, ctx, "bad operation or type");
  const uint32_t e = shapes::element_size(dtype_);
  uint64_t xb, yb = 0;
  if (!shapes::vector_bytes(n, incx, e, &xb) || (op == 0 && !shapes::vector_bytes(n, incy, e, &yb)))
    return invalid(kCall, ctx, "bad size");
  const uint8_t* hx = blas_bytes(kCall, ctx, x, n > 0 ? xb : 0);
  const uint8_t* hy = op == 0 ? blas_bytes(kCall, ctx, y, n > 0 ? yb : 0) : nullptr;
  if (hx == nullptr || (op == 0 && hy == nullptr))
    return invalid(kCall, ctx, "operand outside the session's memory");
  std::memset(result->bytes, 0, sizeof result->bytes);
  std::string why;
  bool ok = false;
  switch (op) {
    case 0: ok = blas::dot(n, hx, incx, hy, incy, false, result->bytes, t, &why); break;
    case 1: ok = blas::nrm2(n, hx, incx, result->bytes, t, &why); break;
    case 2: ok = blas::asum(n, hx, incx, result->bytes, t, &why); break;
    default: {
      int32_t i = 0;
      ok = blas::iamax(n, hx, incx, &i, t, &why);
      std::memcpy(result->bytes, &i, sizeof i);
    }
  }
  return ok ? CUBLAS_STATUS_SUCCESS : invalid(kCall, ctx, why);
}

cublasStatus_t reference_session::on_vgpuBlasReduceDevice(call_context& ctx, uint64_t handle,
                                                          int32_t op, int64_t n, uint64_t x,
                                                          int64_t incx, uint64_t y, int64_t incy,
                                                          int32_t dtype_, uint64_t result) {
  protocol::scalar16 r{};
  if (const cublasStatus_t st = blas_reduce(ctx, handle, op, n, x, incx, y, incy, dtype_, &r);
      st != CUBLAS_STATUS_SUCCESS)
    return st;
  // The result's size: an int for iamax, the real type for nrm2/asum, the element for dot.
  uint32_t bytes = shapes::element_size(dtype_);
  if (op == 3) bytes = sizeof(int32_t);
  else if (op != 0 && (dtype_ == CUDA_C_32F || dtype_ == CUDA_C_64F)) bytes /= 2;
  uint8_t* out = blas_bytes("cublasReduce", ctx, result, bytes);
  if (out == nullptr) return invalid("cublasReduce", ctx, "result outside the session's memory");
  std::memcpy(out, r.bytes, bytes);
  return CUBLAS_STATUS_SUCCESS;
}

// --- triangular solves and LU -----------------------------------------------------------

cublasStatus_t reference_session::on_vgpuBlasTrsm(call_context& ctx, uint64_t handle, int32_t side,
                                                  int32_t uplo, int32_t trans, int32_t diag,
                                                  int64_t m, int64_t n, protocol::scalar16 alpha,
                                                  uint64_t A, int64_t lda, uint64_t B, int64_t ldb,
                                                  int64_t batch, int32_t dtype_, uint32_t flags) {
  static constexpr const char* kCall = "cublasTrsm";
  if (blas_handles_.find(handle) == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  blas::op op;
  dtype t;
  if (!to_op(trans, &op) || !to_dtype(dtype_, &t) || side < 0 || side > 1 || uplo < 0 || uplo > 1 ||
      diag < 0 || diag > 1 || batch < 0)
    return invalid(kCall, ctx, "bad mode or type");
  const uint32_t e = shapes::element_size(dtype_);
  const int64_t ka = side == CUBLAS_SIDE_LEFT ? m : n;
  uint64_t ab, bb;
  if (!shapes::matrix_bytes(ka, ka, lda, e, &ab) || !shapes::matrix_bytes(m, n, ldb, e, &bb))
    return invalid(kCall, ctx, "bad size");
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  const uint8_t* pa = alpha.bytes;
  if ((flags & shapes::kDevicePointerMode) &&
      (pa = blas_bytes(kCall, ctx, shapes::scalar_address(alpha), e)) == nullptr)
    return invalid(kCall, ctx, "scalar outside the session's memory");
  const blas::scalar a_s = blas::load(pa, 0, t);
  const auto sd = side == CUBLAS_SIDE_LEFT ? blas::side::left : blas::side::right;
  const auto fl = uplo == CUBLAS_FILL_MODE_LOWER ? blas::fill::lower : blas::fill::upper;
  const auto dg = diag == CUBLAS_DIAG_UNIT ? blas::diag::unit : blas::diag::non_unit;
  std::vector<std::pair<uint64_t, uint64_t>> members;  // (A, B) device addresses
  if (batch == 0) {
    members.emplace_back(A, B);
  } else {
    const uint64_t list = static_cast<uint64_t>(batch) * 8;
    const uint8_t* la = blas_bytes(kCall, ctx, A, list);
    const uint8_t* lb = blas_bytes(kCall, ctx, B, list);
    if (la == nullptr || lb == nullptr) return invalid(kCall, ctx, "pointer array outside the session's memory");
    for (int64_t i = 0; i < batch; ++i) {
      uint64_t ai, bi;
      std::memcpy(&ai, la + i * 8, 8);
      std::memcpy(&bi, lb + i * 8, 8);
      members.emplace_back(ai, bi);
    }
  }
  std::string why;
  for (const auto& [ai, bi] : members) {
    const uint8_t* ha = blas_bytes(kCall, ctx, ai, ab);
    uint8_t* hb = blas_bytes(kCall, ctx, bi, bb);
    if (ha == nullptr || hb == nullptr) return invalid(kCall, ctx, "operand outside the session's memory");
    if (!blas::trsm(sd, fl, op, dg, m, n, a_s, ha, lda, hb, ldb, t, &why)) return invalid(kCall, ctx, why);
  }
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t reference_session::on_vgpuBlasGetrfBatched(call_context& ctx, uint64_t handle,
                                                          int64_t n, uint64_t Aarray, int64_t lda,
                                                          uint64_t pivots, uint64_t info,
                                                          int64_t batch, int32_t dtype_) {
  static constexpr const char* kCall = "cublasGetrfBatched";
  if (blas_handles_.find(handle) == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  dtype t;
  if (!to_dtype(dtype_, &t) || n < 0 || batch < 0) return invalid(kCall, ctx, "bad size or type");
  const uint32_t e = shapes::element_size(dtype_);
  uint64_t ab;
  if (!shapes::matrix_bytes(n, n, lda, e, &ab)) return invalid(kCall, ctx, "bad size");
  if (batch == 0) return CUBLAS_STATUS_SUCCESS;
  const uint64_t count = static_cast<uint64_t>(batch);
  const uint8_t* la = blas_bytes(kCall, ctx, Aarray, count * 8);
  uint8_t* hi = blas_bytes(kCall, ctx, info, count * sizeof(int32_t));
  uint8_t* hp = pivots != 0 ? blas_bytes(kCall, ctx, pivots, count * static_cast<uint64_t>(n) * sizeof(int32_t))
                            : nullptr;
  if (la == nullptr || hi == nullptr || (pivots != 0 && hp == nullptr))
    return invalid(kCall, ctx, "operand outside the session's memory");
  std::string why;
  for (int64_t i = 0; i < batch; ++i) {
    uint64_t ai;
    std::memcpy(&ai, la + i * 8, 8);
    uint8_t* ha = blas_bytes(kCall, ctx, ai, ab);
    if (ha == nullptr) return invalid(kCall, ctx, "matrix outside the session's memory");
    std::vector<int32_t> piv(static_cast<size_t>(n));
    int32_t inf = 0;
    if (!blas::getrf(n, ha, lda, hp ? piv.data() : nullptr, &inf, t, &why)) return invalid(kCall, ctx, why);
    if (hp) std::memcpy(hp + static_cast<uint64_t>(i) * static_cast<uint64_t>(n) * 4, piv.data(), piv.size() * 4);
    std::memcpy(hi + i * 4, &inf, 4);
  }
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t reference_session::on_vgpuBlasGetrsBatched(call_context& ctx, uint64_t handle,
                                                          int32_t trans, int64_t n, int64_t nrhs,
                                                          uint64_t Aarray, int64_t lda,
                                                          uint64_t pivots, uint64_t Barray,
                                                          int64_t ldb, int64_t batch,
                                                          int32_t dtype_) {
  static constexpr const char* kCall = "cublasGetrsBatched";
  if (blas_handles_.find(handle) == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  blas::op op;
  dtype t;
  if (!to_op(trans, &op) || !to_dtype(dtype_, &t) || n < 0 || nrhs < 0 || batch < 0)
    return invalid(kCall, ctx, "bad size or type");
  const uint32_t e = shapes::element_size(dtype_);
  uint64_t ab, bb;
  if (!shapes::matrix_bytes(n, n, lda, e, &ab) || !shapes::matrix_bytes(n, nrhs, ldb, e, &bb))
    return invalid(kCall, ctx, "bad size");
  if (batch == 0 || n == 0 || nrhs == 0) return CUBLAS_STATUS_SUCCESS;
  const uint64_t count = static_cast<uint64_t>(batch);
  const uint8_t* la = blas_bytes(kCall, ctx, Aarray, count * 8);
  const uint8_t* lb = blas_bytes(kCall, ctx, Barray, count * 8);
  const uint8_t* hp = pivots != 0 ? blas_bytes(kCall, ctx, pivots, count * static_cast<uint64_t>(n) * 4) : nullptr;
  if (la == nullptr || lb == nullptr || (pivots != 0 && hp == nullptr))
    return invalid(kCall, ctx, "operand outside the session's memory");
  std::string why;
  for (int64_t i = 0; i < batch; ++i) {
    uint64_t ai, bi;
    std::memcpy(&ai, la + i * 8, 8);
    std::memcpy(&bi, lb + i * 8, 8);
    const uint8_t* ha = blas_bytes(kCall, ctx, ai, ab);
    uint8_t* hb = blas_bytes(kCall, ctx, bi, bb);
    if (ha == nullptr || hb == nullptr) return invalid(kCall, ctx, "matrix outside the session's memory");
    // Pivots of member i: n ints, 1-based; none means the factorisation did not pivot.
    std::vector<int32_t> piv(static_cast<size_t>(n));
    for (int64_t j = 0; j < n; ++j)
      piv[static_cast<size_t>(j)] = static_cast<int32_t>(j + 1);
    if (hp) std::memcpy(piv.data(), hp + static_cast<uint64_t>(i) * static_cast<uint64_t>(n) * 4, piv.size() * 4);
    int32_t inf = 0;
    if (!blas::getrs(op, n, nrhs, ha, lda, piv.data(), hb, ldb, &inf, t, &why) || inf != 0)
      return invalid(kCall, ctx, why.empty() ? "getrs rejected an argument" : why);
  }
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace vgpu::host::reference
