// cuBLASLt on the reference executor: handles are ids with nothing behind
// them, the heuristic offers one algorithm of its own, and a matmul runs at
// once on the CPU BLAS (blas/ref_blas.h) with the epilogue applied after it.
// Column- and row-major layouts, strided batches, TRANSA/TRANSB, f16, bf16,
// f32 and f64, bias and ReLU epilogues.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <new>
#include <vector>

#include <spdlog/spdlog.h>

#include "actors/executor/cublaslt_problem.h"
#include "actors/executor/reference/blas/blas_internal.h"
#include "actors/executor/reference/blas/ref_blas.h"
#include "actors/executor/reference/reference_session.h"

namespace vgpu::host::reference {

namespace {

namespace wlt = protocol::lt;

// The one algorithm the reference executor has: these bytes, nothing else.
constexpr uint64_t kReferenceAlgo = 0x31464552'55504756ull;  // "VGPUREF1"

bool to_dtype(uint32_t cuda_type, blas::dtype* out) {
  switch (cuda_type) {
    case CUDA_R_16F: *out = blas::dtype::f16; return true;
    case CUDA_R_16BF: *out = blas::dtype::bf16; return true;
    case CUDA_R_32F: *out = blas::dtype::f32; return true;
    case CUDA_R_64F: *out = blas::dtype::f64; return true;
    default: return false;
  }
}

bool compute_dtype(int32_t compute, blas::dtype* out) {
  switch (compute) {
    case CUBLAS_COMPUTE_16F:
    case CUBLAS_COMPUTE_16F_PEDANTIC: *out = blas::dtype::f16; return true;
    case CUBLAS_COMPUTE_32F:
    case CUBLAS_COMPUTE_32F_PEDANTIC:
    case CUBLAS_COMPUTE_32F_FAST_16F:
    case CUBLAS_COMPUTE_32F_FAST_16BF:
    case CUBLAS_COMPUTE_32F_FAST_TF32: *out = blas::dtype::f32; return true;
    case CUBLAS_COMPUTE_64F:
    case CUBLAS_COMPUTE_64F_PEDANTIC: *out = blas::dtype::f64; return true;
    default: return false;
  }
}

// A scale-type value's bytes as the BLAS's scalar.
bool decode_scalar(const uint8_t* p, int32_t scale_type, blas::scalar* out) {
  switch (scale_type) {
    case CUDA_R_16F: {
      uint16_t h;
      std::memcpy(&h, p, 2);
      *out = blas::half_to_float(h);
      return true;
    }
    case CUDA_R_16BF: {
      uint16_t h;
      std::memcpy(&h, p, 2);
      *out = blas::bf16_to_float(h);
      return true;
    }
    case CUDA_R_32F: {
      float f;
      std::memcpy(&f, p, 4);
      *out = f;
      return true;
    }
    case CUDA_R_64F: {
      double d;
      std::memcpy(&d, p, 8);
      *out = d;
      return true;
    }
    default: return false;
  }
}

blas::op flip(blas::op o) { return o == blas::op::n ? blas::op::t : blas::op::n; }
blas::op to_op(int32_t t) { return t == CUBLAS_OP_N ? blas::op::n : t == CUBLAS_OP_T ? blas::op::t : blas::op::c; }

// Element (i, j) of batch member b of a layout, in elements from its base.
int64_t at(const wlt::layout& l, uint64_t i, uint64_t j, int32_t b) {
  const int64_t ij = l.order == CUBLASLT_ORDER_COL ? static_cast<int64_t>(i + j * l.ld)
                                                   : static_cast<int64_t>(i * l.ld + j);
  return ij + static_cast<int64_t>(b) * l.batch_stride;
}

// cuBLASLt's GELU: the tanh approximation.
double gelu(double x) {
  constexpr double kSqrt2OverPi = 0.7978845608028654;
  return 0.5 * x * (1.0 + std::tanh(kSqrt2OverPi * (x + 0.044715 * x * x * x)));
}

}  // namespace

bool reference_session::lt_handle_ok(uint64_t id) {
  if (id & wlt::kBlasHandleTag) return blas_handles_.find(id & ~wlt::kBlasHandleTag) != nullptr;
  return lt_handles_.find(id) != nullptr;
}

cublasStatus_t reference_session::on_vgpuLtCreate(call_context&, uint64_t* handle) {
  *handle = lt_handles_.add(true);
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t reference_session::on_vgpuLtDestroy(call_context& ctx, uint64_t handle) {
  if (!lt_handles_.erase(handle)) {
    spdlog::debug("[reference-executor] cublasLtDestroy: no handle {:#x} (vm={})", handle, ctx.vm_id);
    return CUBLAS_STATUS_NOT_INITIALIZED;
  }
  return CUBLAS_STATUS_SUCCESS;
}

// The toolkit's headers this executor was built with name the version it
// answers as (there is no cuBLASLt library behind it).
cublasStatus_t reference_session::on_vgpuLtGetVersion(call_context&, uint64_t* version, int32_t* major,
                                                      int32_t* minor, int32_t* patch) {
  *version = CUBLAS_VERSION;
  *major = CUBLAS_VER_MAJOR;
  *minor = CUBLAS_VER_MINOR;
  *patch = CUBLAS_VER_PATCH;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t reference_session::on_vgpuLtMatmulAlgoGetHeuristic(call_context& ctx, uint64_t handle,
                                                                  int32_t requested, mut_bytes results,
                                                                  int32_t* returned, const_bytes problem) {
  *returned = 0;
  if (!lt_handle_ok(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  wlt::heuristic_problem p;
  if (problem.size != sizeof p || requested <= 0 || requested > wlt::kMaxHeuristicResults ||
      results.size < sizeof(wlt::heuristic_result))
    return CUBLAS_STATUS_INVALID_VALUE;
  std::memcpy(&p, problem.data, sizeof p);
  lt::shape s;
  std::string why;
  const cublasStatus_t st = lt::check_problem(p.desc, p.a, p.b, p.c, p.d, &s, &why);
  if (st != CUBLAS_STATUS_SUCCESS) {
    spdlog::debug("[reference-executor] cublasLtMatmulAlgoGetHeuristic: {} (vm={})", why, ctx.vm_id);
    return st;
  }
  wlt::heuristic_result r{};
  r.chosen.data[0] = kReferenceAlgo;
  r.state = CUBLAS_STATUS_SUCCESS;
  r.waves_count = 1.0f;
  std::memcpy(results.data, &r, sizeof r);
  *returned = 1;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t reference_session::on_vgpuLtMatmul(call_context& ctx, uint64_t handle, protocol::scalar16 alpha,
                                                 protocol::scalar16 beta, uint64_t A, uint64_t B, uint64_t C,
                                                 uint64_t D, uint64_t workspace, uint64_t workspaceSize,
                                                 uint64_t stream, const_bytes problem) {
  const char* call = "cublasLtMatmul";
  if (!lt_handle_ok(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (!stream_ok(stream)) return CUBLAS_STATUS_INVALID_VALUE;
  wlt::matmul_problem p;
  if (problem.size != sizeof p) return CUBLAS_STATUS_INVALID_VALUE;
  std::memcpy(&p, problem.data, sizeof p);
  if (p.has_algo && (p.chosen.data[0] != kReferenceAlgo ||
                     std::any_of(p.chosen.data + 1, p.chosen.data + 8, [](uint64_t w) { return w != 0; }))) {
    spdlog::debug("[reference-executor] {}: an algorithm this executor did not hand out (vm={})", call, ctx.vm_id);
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  lt::shape s;
  std::string why;
  cublasStatus_t st = lt::check_problem(p.desc, p.a, p.b, p.c, p.d, &s, &why);
  if (st != CUBLAS_STATUS_SUCCESS) {
    spdlog::debug("[reference-executor] {}: {} (vm={})", call, why, ctx.vm_id);
    return st;
  }
  for (const auto& r : lt::matmul_ranges(p, s, alpha, beta, A, B, C, D, workspace, workspaceSize)) {
    if (r.bytes == 0) continue;
    if (check_range(call, ctx, r.ptr, r.bytes) != cudaSuccess) {
      spdlog::debug("[reference-executor] {}: the {} operand is outside this session's memory", call, r.what);
      return CUBLAS_STATUS_INVALID_VALUE;
    }
  }
  const auto& d = p.desc;
  blas::dtype ta{}, tb{}, tc{}, td{}, tcompute{};
  if (!to_dtype(p.a.type, &ta) || !to_dtype(p.b.type, &tb) || !to_dtype(p.c.type, &tc) ||
      !to_dtype(p.d.type, &td) || !compute_dtype(d.compute_type, &tcompute)) {
    spdlog::debug("[reference-executor] {}: types the reference executor does not compute (vm={})", call,
                  ctx.vm_id);
    return CUBLAS_STATUS_NOT_SUPPORTED;
  }
  blas::scalar a{}, b{};
  const uint8_t* pa = alpha.bytes;
  const uint8_t* pb = beta.bytes;
  if (d.pointer_mode == CUBLASLT_POINTER_MODE_DEVICE) {
    uint64_t da = 0, db = 0;
    std::memcpy(&da, alpha.bytes, 8);
    std::memcpy(&db, beta.bytes, 8);
    pa = host_at(da);  // both were range-checked above
    pb = host_at(db);
  }
  if (!decode_scalar(pa, d.scale_type, &a) || !decode_scalar(pb, d.scale_type, &b))
    return CUBLAS_STATUS_NOT_SUPPORTED;
  if (s.m == 0 || s.n == 0) return CUBLAS_STATUS_SUCCESS;

  if (C == D && std::memcmp(&p.c, &p.d, sizeof p.c) != 0) return CUBLAS_STATUS_INVALID_VALUE;  // in place: one layout
  const bool bias = lt::epilogue_has_bias(d.epilogue);
  blas::dtype tbias = td;
  if (bias && d.bias_data_type != -1 && !to_dtype(static_cast<uint32_t>(d.bias_data_type), &tbias))
    return CUBLAS_STATUS_NOT_SUPPORTED;

  // As cuBLASLt: alpha op(A) op(B) + beta C, then the epilogue, in the
  // computation's precision, rounded to D's type once at the end. The sum is
  // kept in a column-major scratch matrix (f64 for f64 output, else f32).
  const blas::dtype tt = td == blas::dtype::f64 ? blas::dtype::f64 : blas::dtype::f32;
  const int64_t mn = static_cast<int64_t>(s.m * s.n);  // D's range was checked, so this fits
  std::vector<uint8_t> scratch;
  try {
    scratch.assign(static_cast<size_t>(mn) * static_cast<size_t>(s.batch) * blas::element_size(tt), 0);
  } catch (const std::bad_alloc&) {
    return CUBLAS_STATUS_ALLOC_FAILED;
  }
  auto at_scratch = [&](uint64_t i, uint64_t j, int32_t bi) {
    return static_cast<int64_t>(i + j * s.m) + static_cast<int64_t>(bi) * mn;
  };
  const uint8_t* cbase = host_at(C);
  if (b != blas::scalar(0.0))
    for (int32_t bi = 0; bi < s.batch; ++bi)
      for (uint64_t j = 0; j < s.n; ++j)
        for (uint64_t i = 0; i < s.m; ++i)
          blas::store(scratch.data(), at_scratch(i, j, bi), tt, blas::load(cbase, at(p.c, i, j, bi), tc));
  if (s.k > 0) {
    // A row-major matrix is the column-major view of its transpose.
    const blas::matrix ma{host_at(A), ta, p.a.ld, p.a.batch_stride};
    const blas::matrix mb{host_at(B), tb, p.b.ld, p.b.batch_stride};
    const blas::op oa = p.a.order == CUBLASLT_ORDER_COL ? to_op(d.transa) : flip(to_op(d.transa));
    const blas::op ob = p.b.order == CUBLASLT_ORDER_COL ? to_op(d.transb) : flip(to_op(d.transb));
    const blas::out_matrix mt{scratch.data(), tt, static_cast<int64_t>(s.m), mn};
    // 16-bit compute is carried out in f32 here (the scratch is f32).
    const blas::dtype tcomp = tcompute == blas::dtype::f16 ? blas::dtype::f32 : tcompute;
    if (!blas::gemm(oa, ob, static_cast<int64_t>(s.m), static_cast<int64_t>(s.n), static_cast<int64_t>(s.k), a, ma,
                    mb, b, mt, tcomp, s.batch, &why)) {
      spdlog::debug("[reference-executor] {}: {} (vm={})", call, why, ctx.vm_id);
      return CUBLAS_STATUS_NOT_SUPPORTED;
    }
  } else {
    for (int32_t bi = 0; bi < s.batch; ++bi)  // k == 0: beta C alone
      for (int64_t e = 0; e < mn; ++e) {
        const int64_t x = e + bi * mn;
        blas::store(scratch.data(), x, tt, b * blas::load(scratch.data(), x, tt));
      }
  }
  const bool relu = (d.epilogue & CUBLASLT_EPILOGUE_RELU) != 0;
  const bool gelu_on = (d.epilogue & CUBLASLT_EPILOGUE_GELU) != 0;
  const uint8_t* bbase = bias ? host_at(d.bias_pointer) : nullptr;
  uint8_t* dbase = host_at(D);
  for (int32_t bi = 0; bi < s.batch; ++bi)
    for (uint64_t j = 0; j < s.n; ++j)
      for (uint64_t i = 0; i < s.m; ++i) {
        double v = blas::load(scratch.data(), at_scratch(i, j, bi), tt).real();
        if (bias) v += blas::load(bbase, static_cast<int64_t>(i) + bi * d.bias_batch_stride, tbias).real();
        if (relu) v = v > 0.0 ? v : 0.0;
        if (gelu_on) v = gelu(v);
        blas::store(dbase, at(p.d, i, j, bi), td, v);
      }
  return CUBLAS_STATUS_SUCCESS;
}

}  // namespace vgpu::host::reference
