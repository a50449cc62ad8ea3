// The remoted cuBLAS on the GPU: real cuBLAS handles made in the session's
// context, bound to the session's streams. Every handler that touches cuBLAS
// starts with ensure_context(): the session's context is created on first use,
// and a handle made with no context current would be made by the runtime in
// the device's primary context (another address space), its workspace there. Every device operand's whole extent
// (sizes, leading dimension or increment, strides, batch) is checked against
// the session's ledger before cuBLAS sees it; arrays of pointers are read,
// checked member by member, and handed to cuBLAS as a private copy.
#include <cstring>
#include <limits>
#include <tuple>
#include <vector>

#include <cublas_v2.h>  // the _v2 names, as programs call them
#include <spdlog/spdlog.h>

#include "actors/executor/cuda/cuda_errors.h"
#include "actors/executor/cuda/cuda_session.h"
#include "protocol/blas_shapes.h"

namespace vgpu::host::cuda {

namespace {

namespace shapes = protocol::blas;

bool fits_int(int64_t v) { return v >= std::numeric_limits<int>::min() && v <= std::numeric_limits<int>::max(); }

cublasStatus_t invalid(const char* call, const call_context& c, const char* why) {
  spdlog::debug("[cuda-executor] {}: {} (vm={})", call, why, c.vm_id);
  return CUBLAS_STATUS_INVALID_VALUE;
}

cublasStatus_t failed(const char* call, const call_context& c, CUresult r) {
  spdlog::debug("[cuda-executor] {}: {} (vm={})", call, error_name(r), c.vm_id);
  return CUBLAS_STATUS_EXECUTION_FAILED;
}

cublasStatus_t logged(const char* call, const call_context& c, cublasStatus_t st) {
  if (st != CUBLAS_STATUS_SUCCESS)
    spdlog::debug("[cuda-executor] {}: cuBLAS answered {} (vm={})", call, cublasGetStatusName(st), c.vm_id);
  return st;
}

// A device scratch array, freed in stream order when it goes out of scope
// (after the cuBLAS call that reads it was queued); its charge on the VM's
// budget goes back then too.
template <typename Scratch>
class stream_scratch {
 public:
  explicit stream_scratch(CUstream s) : stream_(s) {}
  ~stream_scratch() {
    if (s_.ptr != 0) cuMemFreeAsync(s_.ptr, stream_);
  }
  stream_scratch(const stream_scratch&) = delete;
  stream_scratch& operator=(const stream_scratch&) = delete;
  Scratch* out() { return &s_; }
  template <typename T>
  T as() const { return reinterpret_cast<T>(static_cast<uintptr_t>(s_.ptr)); }

 private:
  CUstream stream_;
  Scratch s_;
};

// The guest's pointer mode travels with each call (flags); cuBLAS keeps it per handle.
void set_pointer_mode(cublasHandle_t h, uint32_t flags) {
  cublasSetPointerMode(h, (flags & shapes::kDevicePointerMode) ? CUBLAS_POINTER_MODE_DEVICE : CUBLAS_POINTER_MODE_HOST);
}

}  // namespace

void cuda_session::blas_destroy::operator()(cublasContext* h) const {
  if (const cublasStatus_t st = cublasDestroy(h); st != CUBLAS_STATUS_SUCCESS)
    spdlog::debug("[cuda-executor] cublasDestroy failed: {}", cublasGetStatusName(st));
}

cuda_session::blas_entry* cuda_session::ready_blas(const char* call, const call_context& c, uint64_t id,
                                                   cublasStatus_t* st) {
  if (const CUresult r = ensure_context(); r != CUDA_SUCCESS) {
    *st = failed(call, c, r);
    return nullptr;
  }
  blas_entry* e = find_blas(id);
  if (e == nullptr) {
    *st = CUBLAS_STATUS_NOT_INITIALIZED;
    return nullptr;
  }
  CUstream s = nullptr;
  if (!resolve_stream(e->stream_id, &s) || s != e->stream) {
    spdlog::debug("[cuda-executor] cuBLAS handle {:#x}: its stream {:#x} was destroyed (vm={})", id, e->stream_id,
                  c.vm_id);
    *st = CUBLAS_STATUS_INVALID_VALUE;
    return nullptr;
  }
  return e;
}

cublasStatus_t cuda_session::blas_pointer_array(const call_context& c, const blas_entry& e,
                                                uint64_t array, int64_t count, uint64_t bytes,
                                                device_scratch* scratch) {
  static constexpr const char* kCall = "cublas pointer array";
  const uint64_t list = static_cast<uint64_t>(count) * sizeof(uint64_t);
  if (!in_session(kCall, c, array, list)) return invalid(kCall, c, "array outside the session's memory");
  // The array's contents as the stream will see them: wait for the stream
  // (this blocks the worker; batched calls with pointer arrays pay it).
  std::vector<uint64_t> ptrs(static_cast<size_t>(count));
  if (const CUresult r = cuStreamSynchronize(e.stream); r != CUDA_SUCCESS) return failed(kCall, c, r);
  if (const CUresult r = cuMemcpyDtoH(ptrs.data(), static_cast<CUdeviceptr>(array), list); r != CUDA_SUCCESS)
    return failed(kCall, c, r);
  if (bytes != 0)
    for (uint64_t p : ptrs)
      if (!in_session(kCall, c, p, bytes)) return invalid(kCall, c, "member outside the session's memory");
  // Allocated for the guest, so on its VM's budget (given back with the scratch).
  scratch->charge = memory_charge(budget_, list, "cuBLAS pointer array");
  if (!scratch->charge.ok()) return CUBLAS_STATUS_ALLOC_FAILED;
  if (const CUresult r = cuMemAllocAsync(&scratch->ptr, list, e.stream); r != CUDA_SUCCESS) return failed(kCall, c, r);
  // From pageable memory the copy has taken the bytes when it returns.
  if (const CUresult r = cuMemcpyHtoDAsync(scratch->ptr, ptrs.data(), list, e.stream); r != CUDA_SUCCESS)
    return failed(kCall, c, r);
  return CUBLAS_STATUS_SUCCESS;
}

// --- handles ----------------------------------------------------------------------

cublasStatus_t cuda_session::on_vgpuBlasCreate(call_context& c, uint64_t* handle) {
  if (const CUresult r = ensure_context(); r != CUDA_SUCCESS) return failed("cublasCreate", c, r);
  cublasHandle_t h = nullptr;
  if (const cublasStatus_t st = cublasCreate(&h); st != CUBLAS_STATUS_SUCCESS) return logged("cublasCreate", c, st);
  blas_entry e;
  e.handle.reset(h);
  // The guest's default stream is the context's NULL stream, cuBLAS's default too.
  *handle = blas_handles_.add(std::move(e));
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cuda_session::on_vgpuBlasDestroy(call_context& c, uint64_t handle) {
  if (const CUresult r = ensure_context(); r != CUDA_SUCCESS) return failed("cublasDestroy", c, r);
  return blas_handles_.erase(handle) ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_INITIALIZED;
}

cublasStatus_t cuda_session::on_vgpuBlasSetStream(call_context& c, uint64_t handle, uint64_t stream) {
  if (const CUresult r = ensure_context(); r != CUDA_SUCCESS) return failed("cublasSetStream", c, r);
  blas_entry* e = find_blas(handle);
  if (e == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  CUstream s = nullptr;
  if (!resolve_stream(stream, &s)) return invalid("cublasSetStream", c, "unknown stream");
  if (const cublasStatus_t st = cublasSetStream(e->handle.get(), reinterpret_cast<cudaStream_t>(s));
      st != CUBLAS_STATUS_SUCCESS)
    return logged("cublasSetStream", c, st);
  e->stream = s;
  e->stream_id = stream;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cuda_session::on_vgpuBlasSetWorkspace(call_context& c, uint64_t handle, uint64_t workspace,
                                                     uint64_t bytes) {
  if (const CUresult r = ensure_context(); r != CUDA_SUCCESS) return failed("cublasSetWorkspace", c, r);
  blas_entry* e = find_blas(handle);
  if (e == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (bytes != 0 && check_range("cublasSetWorkspace", c, workspace, bytes) != cudaSuccess)
    return invalid("cublasSetWorkspace", c, "workspace outside the session's memory");
  return logged("cublasSetWorkspace", c,
                cublasSetWorkspace(e->handle.get(), bytes ? reinterpret_cast<void*>(workspace) : nullptr, bytes));
}

cublasStatus_t cuda_session::on_vgpuBlasSetMathMode(call_context& c, uint64_t handle, int32_t mode) {
  if (const CUresult r = ensure_context(); r != CUDA_SUCCESS) return failed("cublasSetMathMode", c, r);
  blas_entry* e = find_blas(handle);
  if (e == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  return logged("cublasSetMathMode", c, cublasSetMathMode(e->handle.get(), static_cast<cublasMath_t>(mode)));
}

cublasStatus_t cuda_session::on_vgpuBlasSetAtomicsMode(call_context& c, uint64_t handle, int32_t mode) {
  if (const CUresult r = ensure_context(); r != CUDA_SUCCESS) return failed("cublasSetAtomicsMode", c, r);
  blas_entry* e = find_blas(handle);
  if (e == nullptr) return CUBLAS_STATUS_NOT_INITIALIZED;
  return logged("cublasSetAtomicsMode", c,
                cublasSetAtomicsMode(e->handle.get(), static_cast<cublasAtomicsMode_t>(mode)));
}

cublasStatus_t cuda_session::on_vgpuBlasGetVersion(call_context& c, int32_t* version) {
  // The library actually loaded on the host, not the headers we were built with.
  int major = 0, minor = 0, patch = 0;
  if (cublasGetProperty(MAJOR_VERSION, &major) != CUBLAS_STATUS_SUCCESS ||
      cublasGetProperty(MINOR_VERSION, &minor) != CUBLAS_STATUS_SUCCESS ||
      cublasGetProperty(PATCH_LEVEL, &patch) != CUBLAS_STATUS_SUCCESS)
    return logged("cublasGetProperty", c, CUBLAS_STATUS_INTERNAL_ERROR);
  *version = major * 10000 + minor * 100 + patch;
  return CUBLAS_STATUS_SUCCESS;
}

// --- GEMM ---------------------------------------------------------------------------

cublasStatus_t cuda_session::on_vgpuBlasGemm(call_context& c, uint64_t handle, int32_t transa, int32_t transb,
                                             int64_t m, int64_t n, int64_t k, protocol::scalar16 alpha,
                                             uint64_t A, int32_t Atype, int64_t lda, int64_t strideA, uint64_t B,
                                             int32_t Btype, int64_t ldb, int64_t strideB, protocol::scalar16 beta,
                                             uint64_t C, int32_t Ctype, int64_t ldc, int64_t strideC,
                                             int64_t batch, int32_t computeType, int32_t algo, uint32_t flags) {
  static constexpr const char* kCall = "cublasGemm";
  cublasStatus_t hs = CUBLAS_STATUS_SUCCESS;
  blas_entry* e = ready_blas(kCall, c, handle, &hs);
  if (e == nullptr) return hs;
  const bool ta_n = transa == CUBLAS_OP_N, tb_n = transb == CUBLAS_OP_N;
  const bool ops_ok = (ta_n || transa == CUBLAS_OP_T || transa == CUBLAS_OP_C) &&
                      (tb_n || transb == CUBLAS_OP_T || transb == CUBLAS_OP_C);
  const uint32_t ea = shapes::element_size(Atype), eb = shapes::element_size(Btype), ec = shapes::element_size(Ctype);
  const int32_t stype = shapes::gemm_scalar_type(computeType, Ctype);
  if (!ops_ok || m < 0 || n < 0 || k < 0 || batch < 1 || !fits_int(m) || !fits_int(n) || !fits_int(k) ||
      !fits_int(lda) || !fits_int(ldb) || !fits_int(ldc) || !fits_int(batch))
    return invalid(kCall, c, "bad operation or size");
  if (ea == 0 || eb == 0 || ec == 0 || stype < 0) return CUBLAS_STATUS_NOT_SUPPORTED;
  uint64_t ab, bb, cb;
  if (!shapes::matrix_bytes(ta_n ? m : k, ta_n ? k : m, lda, ea, &ab) ||
      !shapes::matrix_bytes(tb_n ? k : n, tb_n ? n : k, ldb, eb, &bb) || !shapes::matrix_bytes(m, n, ldc, ec, &cb))
    return invalid(kCall, c, "bad leading dimension");
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  if (k == 0) ab = bb = 0;
  cublasHandle_t h = e->handle.get();
  const void* pa = alpha.bytes;
  const void* pb = beta.bytes;
  if (flags & shapes::kDevicePointerMode) {
    const uint32_t ss = shapes::element_size(stype);
    const uint64_t da = shapes::scalar_address(alpha), db = shapes::scalar_address(beta);
    if (!in_session(kCall, c, da, ss) || !in_session(kCall, c, db, ss))
      return invalid(kCall, c, "scalar outside the session's memory");
    pa = reinterpret_cast<const void*>(da);
    pb = reinterpret_cast<const void*>(db);
  }
  set_pointer_mode(h, flags);
  const auto opa = static_cast<cublasOperation_t>(transa), opb = static_cast<cublasOperation_t>(transb);
  const auto comp = static_cast<cublasComputeType_t>(computeType);
  const auto alg = static_cast<cublasGemmAlgo_t>(algo);
  const int im = static_cast<int>(m), in = static_cast<int>(n), ik = static_cast<int>(k);
  const int ilda = static_cast<int>(lda), ildb = static_cast<int>(ldb), ildc = static_cast<int>(ldc);

  if (flags & shapes::kPointerArrays) {
    stream_scratch<device_scratch> sa(e->stream), sb(e->stream), sc(e->stream);
    for (auto [arr, bytes, out] : {std::make_tuple(A, ab, sa.out()), std::make_tuple(B, bb, sb.out()),
                                   std::make_tuple(C, cb, sc.out())})
      if (const cublasStatus_t st = blas_pointer_array(c, *e, arr, batch, bytes, out); st != CUBLAS_STATUS_SUCCESS)
        return st;
    return logged(kCall, c,
                  cublasGemmBatchedEx(h, opa, opb, im, in, ik, pa, sa.as<const void* const*>(),
                                      static_cast<cudaDataType_t>(Atype), ilda, sb.as<const void* const*>(),
                                      static_cast<cudaDataType_t>(Btype), ildb, pb, sc.as<void* const*>(),
                                      static_cast<cudaDataType_t>(Ctype), ildc, static_cast<int>(batch), comp, alg));
  }
  uint64_t asp, bsp, csp;
  if (!shapes::strided_bytes(ab, strideA, batch, ea, &asp) || !shapes::strided_bytes(bb, strideB, batch, eb, &bsp) ||
      !shapes::strided_bytes(cb, strideC, batch, ec, &csp))
    return invalid(kCall, c, "bad stride");
  if ((asp && !in_session(kCall, c, A, asp)) || (bsp && !in_session(kCall, c, B, bsp)) ||
      !in_session(kCall, c, C, csp))
    return invalid(kCall, c, "operand outside the session's memory");
  const auto* dA = reinterpret_cast<const void*>(A);
  const auto* dB = reinterpret_cast<const void*>(B);
  auto* dC = reinterpret_cast<void*>(C);
  const bool all = Atype == Btype && Btype == Ctype;
  const bool plain = batch == 1 && all && algo == CUBLAS_GEMM_DEFAULT;
  // The typed entry points where they mean exactly the same (the SGEMM path
  // most programs take), GemmEx for the rest.
  if (plain && Atype == CUDA_R_32F && computeType == CUBLAS_COMPUTE_32F)
    return logged(kCall, c, cublasSgemm(h, opa, opb, im, in, ik, static_cast<const float*>(pa), static_cast<const float*>(dA),
                                        ilda, static_cast<const float*>(dB), ildb, static_cast<const float*>(pb),
                                        static_cast<float*>(dC), ildc));
  if (plain && Atype == CUDA_R_64F && computeType == CUBLAS_COMPUTE_64F)
    return logged(kCall, c, cublasDgemm(h, opa, opb, im, in, ik, static_cast<const double*>(pa),
                                        static_cast<const double*>(dA), ilda, static_cast<const double*>(dB), ildb,
                                        static_cast<const double*>(pb), static_cast<double*>(dC), ildc));
  if (batch == 1)
    return logged(kCall, c, cublasGemmEx(h, opa, opb, im, in, ik, pa, dA, static_cast<cudaDataType_t>(Atype), ilda, dB,
                                         static_cast<cudaDataType_t>(Btype), ildb, pb, dC,
                                         static_cast<cudaDataType_t>(Ctype), ildc, comp, alg));
  return logged(kCall, c,
                cublasGemmStridedBatchedEx(h, opa, opb, im, in, ik, pa, dA, static_cast<cudaDataType_t>(Atype), ilda,
                                           strideA, dB, static_cast<cudaDataType_t>(Btype), ildb, strideB, pb, dC,
                                           static_cast<cudaDataType_t>(Ctype), ildc, strideC, static_cast<int>(batch),
                                           comp, alg));
}

// --- level 1 and 2 ------------------------------------------------------------------

// Scalars and results: by value (host pointer mode) or at checked device addresses.
const void* cuda_session::blas_scalar(const char* call, const call_context& c, const protocol::scalar16& v,
                                      uint32_t flags, uint32_t size, bool* ok) const {
  *ok = true;
  if (!(flags & shapes::kDevicePointerMode)) return v.bytes;
  const uint64_t d = shapes::scalar_address(v);
  *ok = in_session(call, c, d, size);
  return reinterpret_cast<const void*>(d);
}

cublasStatus_t cuda_session::on_vgpuBlasGemv(call_context& c, uint64_t handle, int32_t trans, int64_t m, int64_t n,
                                             protocol::scalar16 alpha, uint64_t A, int64_t lda, uint64_t x,
                                             int64_t incx, protocol::scalar16 beta, uint64_t y, int64_t incy,
                                             int32_t dtype, uint32_t flags) {
  static constexpr const char* kCall = "cublasGemv";
  cublasStatus_t hs = CUBLAS_STATUS_SUCCESS;
  blas_entry* e = ready_blas(kCall, c, handle, &hs);
  if (e == nullptr) return hs;
  if (dtype != CUDA_R_32F && dtype != CUDA_R_64F) return CUBLAS_STATUS_NOT_SUPPORTED;
  const uint32_t es = shapes::element_size(dtype);
  const bool tn = trans == CUBLAS_OP_N;
  uint64_t ab, xb, yb;
  if ((!tn && trans != CUBLAS_OP_T && trans != CUBLAS_OP_C) || !fits_int(m) || !fits_int(n) || !fits_int(lda) ||
      !fits_int(incx) || !fits_int(incy) || !shapes::matrix_bytes(m, n, lda, es, &ab) ||
      !shapes::vector_bytes(tn ? n : m, incx, es, &xb) || !shapes::vector_bytes(tn ? m : n, incy, es, &yb))
    return invalid(kCall, c, "bad size");
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  bool ok1, ok2;
  const void* pa = blas_scalar(kCall, c, alpha, flags, es, &ok1);
  const void* pb = blas_scalar(kCall, c, beta, flags, es, &ok2);
  if (!ok1 || !ok2 || !in_session(kCall, c, A, ab) || !in_session(kCall, c, x, xb) || !in_session(kCall, c, y, yb))
    return invalid(kCall, c, "operand outside the session's memory");
  cublasHandle_t h = e->handle.get();
  set_pointer_mode(h, flags);
  const auto op = static_cast<cublasOperation_t>(trans);
  if (dtype == CUDA_R_32F)
    return logged(kCall, c, cublasSgemv(h, op, int(m), int(n), static_cast<const float*>(pa), reinterpret_cast<const float*>(A),
                                        int(lda), reinterpret_cast<const float*>(x), int(incx),
                                        static_cast<const float*>(pb), reinterpret_cast<float*>(y), int(incy)));
  return logged(kCall, c, cublasDgemv(h, op, int(m), int(n), static_cast<const double*>(pa), reinterpret_cast<const double*>(A),
                                      int(lda), reinterpret_cast<const double*>(x), int(incx),
                                      static_cast<const double*>(pb), reinterpret_cast<double*>(y), int(incy)));
}

cublasStatus_t cuda_session::on_vgpuBlasAxpy(call_context& c, uint64_t handle, int64_t n, protocol::scalar16 alpha,
                                             uint64_t x, int64_t incx, uint64_t y, int64_t incy, int32_t dtype,
                                             uint32_t flags) {
  static constexpr const char* kCall = "cublasAxpy";
  cublasStatus_t hs = CUBLAS_STATUS_SUCCESS;
  blas_entry* e = ready_blas(kCall, c, handle, &hs);
  if (e == nullptr) return hs;
  if (dtype != CUDA_R_32F && dtype != CUDA_R_64F) return CUBLAS_STATUS_NOT_SUPPORTED;
  const uint32_t es = shapes::element_size(dtype);
  uint64_t xb, yb;
  if (!fits_int(n) || !fits_int(incx) || !fits_int(incy) || !shapes::vector_bytes(n, incx, es, &xb) ||
      !shapes::vector_bytes(n, incy, es, &yb))
    return invalid(kCall, c, "bad size");
  if (n <= 0) return CUBLAS_STATUS_SUCCESS;
  bool ok;
  const void* pa = blas_scalar(kCall, c, alpha, flags, es, &ok);
  if (!ok || !in_session(kCall, c, x, xb) || !in_session(kCall, c, y, yb)) return invalid(kCall, c, "operand outside the session's memory");
  cublasHandle_t h = e->handle.get();
  set_pointer_mode(h, flags);
  if (dtype == CUDA_R_32F)
    return logged(kCall, c, cublasSaxpy(h, int(n), static_cast<const float*>(pa), reinterpret_cast<const float*>(x),
                                        int(incx), reinterpret_cast<float*>(y), int(incy)));
  return logged(kCall, c, cublasDaxpy(h, int(n), static_cast<const double*>(pa), reinterpret_cast<const double*>(x),
                                      int(incx), reinterpret_cast<double*>(y), int(incy)));
}

cublasStatus_t cuda_session::on_vgpuBlasScal(call_context& c, uint64_t handle, int64_t n, protocol::scalar16 alpha,
                                             uint64_t x, int64_t incx, int32_t dtype, uint32_t flags) {
  static constexpr const char* kCall = "cublasScal";
  cublasStatus_t hs = CUBLAS_STATUS_SUCCESS;
  blas_entry* e = ready_blas(kCall, c, handle, &hs);
  if (e == nullptr) return hs;
  if (dtype != CUDA_R_32F && dtype != CUDA_R_64F) return CUBLAS_STATUS_NOT_SUPPORTED;
  const uint32_t es = shapes::element_size(dtype);
  uint64_t xb;
  if (!fits_int(n) || !fits_int(incx) || !shapes::vector_bytes(n, incx, es, &xb)) return invalid(kCall, c, "bad size");
  if (n <= 0) return CUBLAS_STATUS_SUCCESS;
  bool ok;
  const void* pa = blas_scalar(kCall, c, alpha, flags, es, &ok);
  if (!ok || !in_session(kCall, c, x, xb)) return invalid(kCall, c, "operand outside the session's memory");
  cublasHandle_t h = e->handle.get();
  set_pointer_mode(h, flags);
  if (dtype == CUDA_R_32F)
    return logged(kCall, c, cublasSscal(h, int(n), static_cast<const float*>(pa), reinterpret_cast<float*>(x), int(incx)));
  return logged(kCall, c, cublasDscal(h, int(n), static_cast<const double*>(pa), reinterpret_cast<double*>(x), int(incx)));
}

cublasStatus_t cuda_session::on_vgpuBlasCopy(call_context& c, uint64_t handle, int64_t n, uint64_t x, int64_t incx,
                                             uint64_t y, int64_t incy, int32_t dtype) {
  static constexpr const char* kCall = "cublasCopy";
  cublasStatus_t hs = CUBLAS_STATUS_SUCCESS;
  blas_entry* e = ready_blas(kCall, c, handle, &hs);
  if (e == nullptr) return hs;
  if (dtype != CUDA_R_32F && dtype != CUDA_R_64F) return CUBLAS_STATUS_NOT_SUPPORTED;
  const uint32_t es = shapes::element_size(dtype);
  uint64_t xb, yb;
  if (!fits_int(n) || !fits_int(incx) || !fits_int(incy) || !shapes::vector_bytes(n, incx, es, &xb) ||
      !shapes::vector_bytes(n, incy, es, &yb))
    return invalid(kCall, c, "bad size");
  if (n <= 0) return CUBLAS_STATUS_SUCCESS;
  if (!in_session(kCall, c, x, xb) || !in_session(kCall, c, y, yb))
    return invalid(kCall, c, "operand outside the session's memory");
  cublasHandle_t h = e->handle.get();
  if (dtype == CUDA_R_32F)
    return logged(kCall, c, cublasScopy(h, int(n), reinterpret_cast<const float*>(x), int(incx),
                                        reinterpret_cast<float*>(y), int(incy)));
  return logged(kCall, c, cublasDcopy(h, int(n), reinterpret_cast<const double*>(x), int(incx),
                                      reinterpret_cast<double*>(y), int(incy)));
}

namespace {

// One reduction (op: 0 dot, 1 nrm2, 2 asum, 3 iamax) into `result`, a device
// address (device pointer mode).
cublasStatus_t reduce(cublasHandle_t h, int32_t op, int n, uint64_t x, int incx, uint64_t y, int incy, int32_t dtype,
                      void* result) {
  if (dtype == CUDA_R_32F) {
    const auto* fx = reinterpret_cast<const float*>(x);
    switch (op) {
      case 0: return cublasSdot(h, n, fx, incx, reinterpret_cast<const float*>(y), incy, static_cast<float*>(result));
      case 1: return cublasSnrm2(h, n, fx, incx, static_cast<float*>(result));
      case 2: return cublasSasum(h, n, fx, incx, static_cast<float*>(result));
      default: return cublasIsamax(h, n, fx, incx, static_cast<int*>(result));
    }
  }
  const auto* dx = reinterpret_cast<const double*>(x);
  switch (op) {
    case 0: return cublasDdot(h, n, dx, incx, reinterpret_cast<const double*>(y), incy, static_cast<double*>(result));
    case 1: return cublasDnrm2(h, n, dx, incx, static_cast<double*>(result));
    case 2: return cublasDasum(h, n, dx, incx, static_cast<double*>(result));
    default: return cublasIdamax(h, n, dx, incx, static_cast<int*>(result));
  }
}

}  // namespace

cublasStatus_t cuda_session::on_vgpuBlasReduceDevice(call_context& c, uint64_t handle, int32_t op, int64_t n,
                                                     uint64_t x, int64_t incx, uint64_t y, int64_t incy,
                                                     int32_t dtype, uint64_t result) {
  static constexpr const char* kCall = "cublasReduce";
  cublasStatus_t hs = CUBLAS_STATUS_SUCCESS;
  blas_entry* e = ready_blas(kCall, c, handle, &hs);
  if (e == nullptr) return hs;
  if (dtype != CUDA_R_32F && dtype != CUDA_R_64F) return CUBLAS_STATUS_NOT_SUPPORTED;
  const uint32_t es = shapes::element_size(dtype);
  uint64_t xb, yb = 0;
  if (op < 0 || op > 3 || !fits_int(n) || !fits_int(incx) || !fits_int(incy) ||
      !shapes::vector_bytes(n, incx, es, &xb) || (op == 0 && !shapes::vector_bytes(n, incy, es, &yb)))
    return invalid(kCall, c, "bad operation or size");
  const uint64_t rb = op == 3 ? sizeof(int) : es;
  if ((xb && !in_session(kCall, c, x, xb)) || (yb && !in_session(kCall, c, y, yb)) ||
      !in_session(kCall, c, result, rb))
    return invalid(kCall, c, "operand outside the session's memory");
  cublasHandle_t h = e->handle.get();
  cublasSetPointerMode(h, CUBLAS_POINTER_MODE_DEVICE);
  return logged(kCall, c, reduce(h, op, int(n), x, int(incx), y, int(incy), dtype, reinterpret_cast<void*>(result)));
}

// --- triangular solves and LU -----------------------------------------------------------

cublasStatus_t cuda_session::on_vgpuBlasTrsm(call_context& c, uint64_t handle, int32_t side, int32_t uplo,
                                             int32_t trans, int32_t diag, int64_t m, int64_t n,
                                             protocol::scalar16 alpha, uint64_t A, int64_t lda, uint64_t B,
                                             int64_t ldb, int64_t batch, int32_t dtype, uint32_t flags) {
  static constexpr const char* kCall = "cublasTrsm";
  cublasStatus_t hs = CUBLAS_STATUS_SUCCESS;
  blas_entry* e = ready_blas(kCall, c, handle, &hs);
  if (e == nullptr) return hs;
  if (dtype != CUDA_R_32F && dtype != CUDA_R_64F) return CUBLAS_STATUS_NOT_SUPPORTED;
  const uint32_t es = shapes::element_size(dtype);
  const int64_t ka = side == CUBLAS_SIDE_LEFT ? m : n;
  uint64_t ab, bb;
  if (side < 0 || side > 1 || uplo < 0 || uplo > 1 || diag < 0 || diag > 1 || trans < 0 || trans > 2 || batch < 0 ||
      !fits_int(m) || !fits_int(n) || !fits_int(lda) || !fits_int(ldb) || !fits_int(batch) ||
      !shapes::matrix_bytes(ka, ka, lda, es, &ab) || !shapes::matrix_bytes(m, n, ldb, es, &bb))
    return invalid(kCall, c, "bad mode or size");
  if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
  bool ok;
  const void* pa = blas_scalar(kCall, c, alpha, flags, es, &ok);
  if (!ok) return invalid(kCall, c, "scalar outside the session's memory");
  cublasHandle_t h = e->handle.get();
  set_pointer_mode(h, flags);
  const auto sd = static_cast<cublasSideMode_t>(side);
  const auto fl = static_cast<cublasFillMode_t>(uplo);
  const auto op = static_cast<cublasOperation_t>(trans);
  const auto dg = static_cast<cublasDiagType_t>(diag);
  if (batch == 0) {
    if (!in_session(kCall, c, A, ab) || !in_session(kCall, c, B, bb)) return invalid(kCall, c, "operand outside the session's memory");
    if (dtype == CUDA_R_32F)
      return logged(kCall, c, cublasStrsm(h, sd, fl, op, dg, int(m), int(n), static_cast<const float*>(pa),
                                          reinterpret_cast<const float*>(A), int(lda), reinterpret_cast<float*>(B), int(ldb)));
    return logged(kCall, c, cublasDtrsm(h, sd, fl, op, dg, int(m), int(n), static_cast<const double*>(pa),
                                        reinterpret_cast<const double*>(A), int(lda), reinterpret_cast<double*>(B), int(ldb)));
  }
  stream_scratch<device_scratch> sa(e->stream), sb(e->stream);
  if (const cublasStatus_t st = blas_pointer_array(c, *e, A, batch, ab, sa.out()); st != CUBLAS_STATUS_SUCCESS) return st;
  if (const cublasStatus_t st = blas_pointer_array(c, *e, B, batch, bb, sb.out()); st != CUBLAS_STATUS_SUCCESS) return st;
  if (dtype == CUDA_R_32F)
    return logged(kCall, c, cublasStrsmBatched(h, sd, fl, op, dg, int(m), int(n), static_cast<const float*>(pa),
                                               sa.as<const float* const*>(), int(lda), sb.as<float* const*>(), int(ldb),
                                               int(batch)));
  return logged(kCall, c, cublasDtrsmBatched(h, sd, fl, op, dg, int(m), int(n), static_cast<const double*>(pa),
                                             sa.as<const double* const*>(), int(lda), sb.as<double* const*>(), int(ldb),
                                             int(batch)));
}

cublasStatus_t cuda_session::on_vgpuBlasGetrfBatched(call_context& c, uint64_t handle, int64_t n, uint64_t Aarray,
                                                     int64_t lda, uint64_t pivots, uint64_t info, int64_t batch,
                                                     int32_t dtype) {
  static constexpr const char* kCall = "cublasGetrfBatched";
  cublasStatus_t hs = CUBLAS_STATUS_SUCCESS;
  blas_entry* e = ready_blas(kCall, c, handle, &hs);
  if (e == nullptr) return hs;
  if (dtype != CUDA_R_32F && dtype != CUDA_R_64F) return CUBLAS_STATUS_NOT_SUPPORTED;
  const uint32_t es = shapes::element_size(dtype);
  uint64_t ab;
  if (n < 0 || batch < 0 || !fits_int(n) || !fits_int(lda) || !fits_int(batch) || !shapes::matrix_bytes(n, n, lda, es, &ab))
    return invalid(kCall, c, "bad size");
  if (batch == 0) return CUBLAS_STATUS_SUCCESS;
  const uint64_t count = static_cast<uint64_t>(batch);
  if (check_range(kCall, c, info, count * sizeof(int)) != cudaSuccess ||
      (pivots != 0 && n > 0 && check_range(kCall, c, pivots, count * static_cast<uint64_t>(n) * sizeof(int)) != cudaSuccess))
    return invalid(kCall, c, "pivots or info outside the session's memory");
  stream_scratch<device_scratch> sa(e->stream);
  if (const cublasStatus_t st = blas_pointer_array(c, *e, Aarray, batch, ab, sa.out()); st != CUBLAS_STATUS_SUCCESS)
    return st;
  cublasHandle_t h = e->handle.get();
  auto* piv = reinterpret_cast<int*>(pivots);
  auto* inf = reinterpret_cast<int*>(info);
  if (dtype == CUDA_R_32F)
    return logged(kCall, c, cublasSgetrfBatched(h, int(n), sa.as<float* const*>(), int(lda), piv, inf, int(batch)));
  return logged(kCall, c, cublasDgetrfBatched(h, int(n), sa.as<double* const*>(), int(lda), piv, inf, int(batch)));
}

cublasStatus_t cuda_session::on_vgpuBlasGetrsBatched(call_context& c, uint64_t handle, int32_t trans, int64_t n,
                                                     int64_t nrhs, uint64_t Aarray, int64_t lda, uint64_t pivots,
                                                     uint64_t Barray, int64_t ldb, int64_t batch, int32_t dtype) {
  static constexpr const char* kCall = "cublasGetrsBatched";
  cublasStatus_t hs = CUBLAS_STATUS_SUCCESS;
  blas_entry* e = ready_blas(kCall, c, handle, &hs);
  if (e == nullptr) return hs;
  if (dtype != CUDA_R_32F && dtype != CUDA_R_64F) return CUBLAS_STATUS_NOT_SUPPORTED;
  const uint32_t es = shapes::element_size(dtype);
  uint64_t ab, bb;
  if (trans < 0 || trans > 2 || n < 0 || nrhs < 0 || batch < 0 || !fits_int(n) || !fits_int(nrhs) || !fits_int(lda) ||
      !fits_int(ldb) || !fits_int(batch) || !shapes::matrix_bytes(n, n, lda, es, &ab) ||
      !shapes::matrix_bytes(n, nrhs, ldb, es, &bb))
    return invalid(kCall, c, "bad size");
  if (batch == 0 || n == 0 || nrhs == 0) return CUBLAS_STATUS_SUCCESS;
  const uint64_t count = static_cast<uint64_t>(batch);
  if (pivots != 0 && check_range(kCall, c, pivots, count * static_cast<uint64_t>(n) * sizeof(int)) != cudaSuccess)
    return invalid(kCall, c, "pivots outside the session's memory");
  stream_scratch<device_scratch> sa(e->stream), sb(e->stream);
  if (const cublasStatus_t st = blas_pointer_array(c, *e, Aarray, batch, ab, sa.out()); st != CUBLAS_STATUS_SUCCESS)
    return st;
  if (const cublasStatus_t st = blas_pointer_array(c, *e, Barray, batch, bb, sb.out()); st != CUBLAS_STATUS_SUCCESS)
    return st;
  cublasHandle_t h = e->handle.get();
  const auto op = static_cast<cublasOperation_t>(trans);
  const auto* piv = reinterpret_cast<const int*>(pivots);
  int host_info = 0;  // about the arguments only; the guest checked them too
  const cublasStatus_t st =
      dtype == CUDA_R_32F
          ? cublasSgetrsBatched(h, op, int(n), int(nrhs), sa.as<const float* const*>(), int(lda), piv,
                                sb.as<float* const*>(), int(ldb), &host_info, int(batch))
          : cublasDgetrsBatched(h, op, int(n), int(nrhs), sa.as<const double* const*>(), int(lda), piv,
                                sb.as<double* const*>(), int(ldb), &host_info, int(batch));
  if (st == CUBLAS_STATUS_SUCCESS && host_info != 0) return invalid(kCall, c, "cuBLAS rejected an argument");
  return logged(kCall, c, st);
}

}  // namespace vgpu::host::cuda
