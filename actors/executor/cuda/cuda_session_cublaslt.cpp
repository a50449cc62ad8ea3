// cuBLASLt on the GPU: a real cublasLt handle per guest handle, and for each
// call the guest's descriptors rebuilt in stack storage (cublasLt*Init: no
// allocation, nothing to destroy) from the mirror it sent, after every
// pointer the call names has been checked against this session's memory.
#include <algorithm>
#include <cstring>
#include <vector>

#include <spdlog/spdlog.h>

#include "actors/executor/cublaslt_problem.h"
#include "actors/executor/cuda/cuda_session.h"

namespace vgpu::host::cuda {

namespace {

namespace wlt = protocol::lt;

// More algorithms than any program asks the heuristic for in one session;
// past it new ones are not remembered (and so refused by cublasLtMatmul).
constexpr size_t kMaxRememberedAlgos = 1u << 16;

// Stops at the first failing call and remembers which attribute it was.
struct setter {
  cublasStatus_t st = CUBLAS_STATUS_SUCCESS;
  const char* failed = nullptr;
  template <typename F>
  void operator()(const char* what, F&& call) {
    if (st != CUBLAS_STATUS_SUCCESS) return;
    st = call();
    if (st != CUBLAS_STATUS_SUCCESS) failed = what;
  }
};

template <typename T>
cublasStatus_t set_desc(cublasLtMatmulDesc_t d, cublasLtMatmulDescAttributes_t a, const T& v) {
  return cublasLtMatmulDescSetAttribute(d, a, &v, sizeof v);
}
template <typename T>
cublasStatus_t set_layout(cublasLtMatrixLayout_t l, cublasLtMatrixLayoutAttribute_t a, const T& v) {
  return cublasLtMatrixLayoutSetAttribute(l, a, &v, sizeof v);
}
template <typename T>
cublasStatus_t set_pref(cublasLtMatmulPreference_t p, cublasLtMatmulPreferenceAttributes_t a, const T& v) {
  return cublasLtMatmulPreferenceSetAttribute(p, a, &v, sizeof v);
}

// The guest's descriptor in `storage`. Attributes at their defaults are not
// set, so a value the host library would refuse as "set" never is.
cublasStatus_t build_desc(const wlt::matmul_desc& m, cublasLtMatmulDescOpaque_t* storage, const char** failed) {
  cublasLtMatmulDesc_t d = storage;
  setter s;
  s("init", [&] {
    return cublasLtMatmulDescInit(d, static_cast<cublasComputeType_t>(m.compute_type),
                                  static_cast<cudaDataType_t>(m.scale_type));
  });
  s("POINTER_MODE", [&] { return set_desc(d, CUBLASLT_MATMUL_DESC_POINTER_MODE, m.pointer_mode); });
  s("TRANSA", [&] { return set_desc(d, CUBLASLT_MATMUL_DESC_TRANSA, m.transa); });
  s("TRANSB", [&] { return set_desc(d, CUBLASLT_MATMUL_DESC_TRANSB, m.transb); });
  s("TRANSC", [&] { return set_desc(d, CUBLASLT_MATMUL_DESC_TRANSC, m.transc); });
  s("FILL_MODE", [&] { return set_desc(d, CUBLASLT_MATMUL_DESC_FILL_MODE, m.fill_mode); });
  s("EPILOGUE", [&] { return set_desc(d, CUBLASLT_MATMUL_DESC_EPILOGUE, m.epilogue); });
  const void* bias = reinterpret_cast<const void*>(static_cast<uintptr_t>(m.bias_pointer));
  if (m.bias_pointer) s("BIAS_POINTER", [&] { return set_desc(d, CUBLASLT_MATMUL_DESC_BIAS_POINTER, bias); });
  if (m.bias_batch_stride)
    s("BIAS_BATCH_STRIDE", [&] { return set_desc(d, CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE, m.bias_batch_stride); });
  if (m.bias_data_type != -1)
    s("BIAS_DATA_TYPE", [&] { return set_desc(d, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE, m.bias_data_type); });
  if (m.sm_count_target)
    s("SM_COUNT_TARGET", [&] { return set_desc(d, CUBLASLT_MATMUL_DESC_SM_COUNT_TARGET, m.sm_count_target); });
  if (m.fast_accum) s("FAST_ACCUM", [&] { return set_desc(d, CUBLASLT_MATMUL_DESC_FAST_ACCUM, m.fast_accum); });
  const std::pair<cublasLtMatmulDescAttributes_t, uint64_t> ptrs[] = {
      {CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, m.a_scale_pointer},
      {CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, m.b_scale_pointer},
      {CUBLASLT_MATMUL_DESC_C_SCALE_POINTER, m.c_scale_pointer},
      {CUBLASLT_MATMUL_DESC_D_SCALE_POINTER, m.d_scale_pointer},
      {CUBLASLT_MATMUL_DESC_AMAX_D_POINTER, m.amax_d_pointer}};
  for (const auto& [attr, ptr] : ptrs) {
    const void* p = reinterpret_cast<const void*>(static_cast<uintptr_t>(ptr));
    if (ptr) s("scale pointer", [&, attr = attr] { return set_desc(d, attr, p); });
  }
  *failed = s.failed;
  return s.st;
}

cublasStatus_t build_layout(const wlt::layout& m, cublasLtMatrixLayoutOpaque_t* storage, const char** failed) {
  cublasLtMatrixLayout_t l = storage;
  setter s;
  s("layout init", [&] {
    return cublasLtMatrixLayoutInit(l, static_cast<cudaDataType>(m.type), m.rows, m.cols, m.ld);
  });
  if (m.order != CUBLASLT_ORDER_COL) s("ORDER", [&] { return set_layout(l, CUBLASLT_MATRIX_LAYOUT_ORDER, m.order); });
  if (m.batch_count != 1)
    s("BATCH_COUNT", [&] { return set_layout(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, m.batch_count); });
  if (m.batch_stride != 0)
    s("STRIDED_BATCH_OFFSET",
      [&] { return set_layout(l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, m.batch_stride); });
  *failed = s.failed;
  return s.st;
}

cublasStatus_t build_pref(const wlt::preference& m, cublasLtMatmulPreferenceOpaque_t* storage, const char** failed) {
  cublasLtMatmulPreference_t p = storage;
  setter s;
  s("preference init", [&] { return cublasLtMatmulPreferenceInit(p); });
  s("SEARCH_MODE", [&] { return set_pref(p, CUBLASLT_MATMUL_PREF_SEARCH_MODE, m.search_mode); });
  s("MAX_WORKSPACE_BYTES", [&] { return set_pref(p, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, m.max_workspace_bytes); });
  s("REDUCTION_SCHEME_MASK",
    [&] { return set_pref(p, CUBLASLT_MATMUL_PREF_REDUCTION_SCHEME_MASK, m.reduction_scheme_mask); });
  s("MIN_ALIGNMENT_A", [&] { return set_pref(p, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, m.min_alignment_a); });
  s("MIN_ALIGNMENT_B", [&] { return set_pref(p, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, m.min_alignment_b); });
  s("MIN_ALIGNMENT_C", [&] { return set_pref(p, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, m.min_alignment_c); });
  s("MIN_ALIGNMENT_D", [&] { return set_pref(p, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, m.min_alignment_d); });
  if (m.max_waves_count != 0.0f)
    s("MAX_WAVES_COUNT", [&] { return set_pref(p, CUBLASLT_MATMUL_PREF_MAX_WAVES_COUNT, m.max_waves_count); });
  s("IMPL_MASK", [&] { return set_pref(p, CUBLASLT_MATMUL_PREF_IMPL_MASK, m.impl_mask); });
  *failed = s.failed;
  return s.st;
}

// The four layouts of a problem, rebuilt.
struct layouts {
  cublasLtMatrixLayoutOpaque_t a, b, c, d;
};
cublasStatus_t build_layouts(const wlt::layout& a, const wlt::layout& b, const wlt::layout& c,
                             const wlt::layout& d, layouts* out, const char** failed) {
  cublasStatus_t st = build_layout(a, &out->a, failed);
  if (st == CUBLAS_STATUS_SUCCESS) st = build_layout(b, &out->b, failed);
  if (st == CUBLAS_STATUS_SUCCESS) st = build_layout(c, &out->c, failed);
  if (st == CUBLAS_STATUS_SUCCESS) st = build_layout(d, &out->d, failed);
  return st;
}

std::string algo_key(const void* algo) { return std::string(static_cast<const char*>(algo), sizeof(wlt::algo)); }

}  // namespace

void cuda_session::lt_handle_destroy::operator()(cublasLtContext* h) const {
  if (const cublasStatus_t st = cublasLtDestroy(h); st != CUBLAS_STATUS_SUCCESS)
    spdlog::warn("[cuda-executor] cublasLtDestroy failed: {}", cublasLtGetStatusName(st));
}

cublasLtHandle_t cuda_session::find_lt(uint64_t id) {
  if (id & wlt::kBlasHandleTag) {
    blas_entry* e = find_blas(id & ~wlt::kBlasHandleTag);
    // NVIDIA: a cublasHandle_t may be cast to a cublasLtHandle_t.
    return e ? reinterpret_cast<cublasLtHandle_t>(e->handle.get()) : nullptr;
  }
  owned_lt_handle* h = lt_handles_.find(id);
  return h ? h->get() : nullptr;
}

cublasStatus_t cuda_session::on_vgpuLtCreate(call_context& c, uint64_t* handle) {
  *handle = 0;
  // The session's context, created on first use and current on this thread.
  if (ensure_context() != CUDA_SUCCESS) return CUBLAS_STATUS_NOT_INITIALIZED;
  cublasLtHandle_t h = nullptr;
  const cublasStatus_t st = cublasLtCreate(&h);
  if (st != CUBLAS_STATUS_SUCCESS) {
    spdlog::debug("[cuda-executor] cublasLtCreate: {} (vm={})", cublasLtGetStatusName(st), c.vm_id);
    return st;
  }
  *handle = lt_handles_.add(owned_lt_handle(h));
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cuda_session::on_vgpuLtDestroy(call_context& c, uint64_t handle) {
  // The session's context, created on first use and current on this thread.
  if (ensure_context() != CUDA_SUCCESS) return CUBLAS_STATUS_NOT_INITIALIZED;
  if (!lt_handles_.erase(handle)) {
    spdlog::debug("[cuda-executor] cublasLtDestroy: no handle {:#x} (vm={})", handle, c.vm_id);
    return CUBLAS_STATUS_NOT_INITIALIZED;
  }
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cuda_session::on_vgpuLtGetVersion(call_context&, uint64_t* version, int32_t* major, int32_t* minor,
                                                 int32_t* patch) {
  *version = cublasLtGetVersion();
  cublasStatus_t st = cublasLtGetProperty(MAJOR_VERSION, major);
  if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtGetProperty(MINOR_VERSION, minor);
  if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtGetProperty(PATCH_LEVEL, patch);
  return st;
}

cublasStatus_t cuda_session::on_vgpuLtMatmulAlgoGetHeuristic(call_context& c, uint64_t handle, int32_t requested,
                                                            mut_bytes results, int32_t* returned,
                                                            const_bytes problem) {
  const char* call = "cublasLtMatmulAlgoGetHeuristic";
  *returned = 0;
  // The session's context, created on first use and current on this thread.
  if (ensure_context() != CUDA_SUCCESS) return CUBLAS_STATUS_NOT_INITIALIZED;
  const cublasLtHandle_t h = find_lt(handle);
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  wlt::heuristic_problem p;
  if (problem.size != sizeof p || requested <= 0 || requested > wlt::kMaxHeuristicResults ||
      results.size < sizeof(wlt::heuristic_result) * static_cast<uint64_t>(requested))
    return CUBLAS_STATUS_INVALID_VALUE;
  std::memcpy(&p, problem.data, sizeof p);
  lt::shape s;
  std::string why;
  if (const cublasStatus_t st = lt::check_problem(p.desc, p.a, p.b, p.c, p.d, &s, &why); st != CUBLAS_STATUS_SUCCESS) {
    spdlog::debug("[cuda-executor] {}: {} (vm={})", call, why, c.vm_id);
    return st;
  }
  cublasLtMatmulDescOpaque_t desc;
  layouts l;
  cublasLtMatmulPreferenceOpaque_t pref;
  const char* failed = nullptr;
  cublasStatus_t st = build_desc(p.desc, &desc, &failed);
  if (st == CUBLAS_STATUS_SUCCESS) st = build_layouts(p.a, p.b, p.c, p.d, &l, &failed);
  if (st == CUBLAS_STATUS_SUCCESS) st = build_pref(p.pref, &pref, &failed);
  if (st != CUBLAS_STATUS_SUCCESS) {
    spdlog::debug("[cuda-executor] {}: setting {}: {} (vm={})", call, failed ? failed : "?",
                  cublasLtGetStatusName(st), c.vm_id);
    return st;
  }
  std::vector<cublasLtMatmulHeuristicResult_t> found(static_cast<size_t>(requested));
  int count = 0;
  st = cublasLtMatmulAlgoGetHeuristic(h, &desc, &l.a, &l.b, &l.c, &l.d, &pref, requested, found.data(),
                                      &count);
  if (st != CUBLAS_STATUS_SUCCESS) {
    spdlog::debug("[cuda-executor] {}: {} (vm={})", call, cublasLtGetStatusName(st), c.vm_id);
    return st;
  }
  count = std::max(0, std::min(count, requested));
  for (int i = 0; i < count; ++i) {
    wlt::heuristic_result r{};
    static_assert(sizeof r.chosen == sizeof found[i].algo);
    std::memcpy(&r.chosen, &found[i].algo, sizeof r.chosen);
    r.workspace_size = found[i].workspaceSize;
    r.state = found[i].state;
    r.waves_count = found[i].wavesCount;
    std::memcpy(results.data + static_cast<size_t>(i) * sizeof r, &r, sizeof r);
    if (found[i].state == CUBLAS_STATUS_SUCCESS) {
      if (lt_algos_.size() < kMaxRememberedAlgos)
        lt_algos_.insert(algo_key(&found[i].algo));
      else
        spdlog::warn("[cuda-executor] {}: session {} holds {} algorithms; no more are remembered", call,
                     info_.session_id, lt_algos_.size());
    }
  }
  *returned = count;
  return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cuda_session::on_vgpuLtMatmul(call_context& c, uint64_t handle, protocol::scalar16 alpha,
                                            protocol::scalar16 beta, uint64_t A, uint64_t B, uint64_t C, uint64_t D,
                                            uint64_t workspace, uint64_t workspaceSize, uint64_t stream,
                                            const_bytes problem) {
  const char* call = "cublasLtMatmul";
  // The session's context, created on first use and current on this thread.
  if (ensure_context() != CUDA_SUCCESS) return CUBLAS_STATUS_NOT_INITIALIZED;
  const cublasLtHandle_t h = find_lt(handle);
  if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
  CUstream s = nullptr;
  if (!resolve_stream(stream, &s)) {
    spdlog::debug("[cuda-executor] {}: no stream {:#x} (vm={})", call, stream, c.vm_id);
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  wlt::matmul_problem p;
  if (problem.size != sizeof p) return CUBLAS_STATUS_INVALID_VALUE;
  std::memcpy(&p, problem.data, sizeof p);
  if (p.has_algo && !lt_algos_.count(algo_key(&p.chosen))) {
    spdlog::debug("[cuda-executor] {}: an algorithm the heuristic did not hand out (vm={})", call, c.vm_id);
    return CUBLAS_STATUS_INVALID_VALUE;
  }
  lt::shape sh;
  std::string why;
  if (const cublasStatus_t st = lt::check_problem(p.desc, p.a, p.b, p.c, p.d, &sh, &why);
      st != CUBLAS_STATUS_SUCCESS) {
    spdlog::debug("[cuda-executor] {}: {} (vm={})", call, why, c.vm_id);
    return st;
  }
  for (const auto& r : lt::matmul_ranges(p, sh, alpha, beta, A, B, C, D, workspace, workspaceSize)) {
    if (r.bytes == 0) continue;
    if (check_range(call, c, r.ptr, r.bytes) != cudaSuccess) {
      spdlog::debug("[cuda-executor] {}: the {} operand is outside this session's memory", call, r.what);
      return CUBLAS_STATUS_INVALID_VALUE;
    }
  }
  cublasLtMatmulDescOpaque_t desc;
  layouts l;
  const char* failed = nullptr;
  cublasStatus_t st = build_desc(p.desc, &desc, &failed);
  if (st == CUBLAS_STATUS_SUCCESS) st = build_layouts(p.a, p.b, p.c, p.d, &l, &failed);
  if (st != CUBLAS_STATUS_SUCCESS) {
    spdlog::debug("[cuda-executor] {}: setting {}: {} (vm={})", call, failed ? failed : "?",
                  cublasLtGetStatusName(st), c.vm_id);
    return st;
  }
  // Host pointer mode: the scalars' bytes are here (cublasLtMatmul reads them
  // before it returns); device mode: their checked device addresses.
  const void* pa = alpha.bytes;
  const void* pb = beta.bytes;
  if (p.desc.pointer_mode == CUBLASLT_POINTER_MODE_DEVICE) {
    uint64_t da = 0, db = 0;
    std::memcpy(&da, alpha.bytes, sizeof da);
    std::memcpy(&db, beta.bytes, sizeof db);
    pa = reinterpret_cast<const void*>(static_cast<uintptr_t>(da));
    pb = reinterpret_cast<const void*>(static_cast<uintptr_t>(db));
  }
  auto dev = [](uint64_t v) { return reinterpret_cast<void*>(static_cast<uintptr_t>(v)); };
  cublasLtMatmulAlgo_t algo;
  std::memcpy(&algo, &p.chosen, sizeof algo);
  st = cublasLtMatmul(h, &desc, pa, dev(A), &l.a, dev(B), &l.b, pb, dev(C), &l.c, dev(D), &l.d,
                      p.has_algo ? &algo : nullptr, workspaceSize ? dev(workspace) : nullptr, workspaceSize, s);
  if (st != CUBLAS_STATUS_SUCCESS)
    spdlog::debug("[cuda-executor] {}: {} (vm={})", call, cublasLtGetStatusName(st), c.vm_id);
  return st;
}

}  // namespace vgpu::host::cuda
