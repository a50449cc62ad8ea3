// cublasLtMatmulAlgoGetHeuristic and cublasLtMatmul: the two calls that go to
// the host, carrying the guest's descriptor mirrors whole (cublaslt_wire.h).
#include <algorithm>
#include <cstring>


#include "api_ids.h"
#include "api_wire.h"
#include "cublaslt_remote.h"
#include "protocol/cublaslt_checks.h"
#include "shim/cublaslt/lt_objects.h"
#include "shim/transport/guest_call.h"

namespace vgpu::shim::lt {
namespace {

// The scalar as it travels: its bytes (host pointer mode) or its device
// address (device pointer mode).
cublasStatus_t encode_scalar(const void* p, const protocol::lt::matmul_desc& d, protocol::scalar16* out) {
  std::memset(out->bytes, 0, sizeof out->bytes);
  if (!p) return CUBLAS_STATUS_INVALID_VALUE;
  if (d.pointer_mode == CUBLASLT_POINTER_MODE_DEVICE) {
    const uint64_t addr = reinterpret_cast<uint64_t>(p);
    std::memcpy(out->bytes, &addr, sizeof addr);
    return CUBLAS_STATUS_SUCCESS;
  }
  // check_problem allowed host and device pointer modes only.
  const size_t n = protocol::lt::scale_bytes(d.scale_type);
  if (n == 0) return CUBLAS_STATUS_INVALID_VALUE;
  std::memcpy(out->bytes, p, n);
  return CUBLAS_STATUS_SUCCESS;
}

bool copy_layouts(protocol::lt::layout* a, protocol::lt::layout* b, protocol::lt::layout* c,
                  protocol::lt::layout* d, cublasLtMatrixLayout_t A, cublasLtMatrixLayout_t B,
                  cublasLtMatrixLayout_t C, cublasLtMatrixLayout_t D) {
  const layout_mirror *ma = mirror_of(A), *mb = mirror_of(B), *mc = mirror_of(C), *md = mirror_of(D);
  if (!ma || !mb || !mc || !md) return false;
  *a = ma->l;
  *b = mb->l;
  *c = mc->l;
  *d = md->l;
  return true;
}

}  // namespace
}  // namespace vgpu::shim::lt

namespace lt = vgpu::shim::lt;
namespace wire = vgpu::wire;

extern "C" cublasStatus_t cublasLtMatmulAlgoGetHeuristic(cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t operationDesc,
                                                         cublasLtMatrixLayout_t Adesc, cublasLtMatrixLayout_t Bdesc,
                                                         cublasLtMatrixLayout_t Cdesc, cublasLtMatrixLayout_t Ddesc,
                                                         cublasLtMatmulPreference_t preference, int requestedAlgoCount,
                                                         cublasLtMatmulHeuristicResult_t heuristicResultsArray[],
                                                         int* returnAlgoCount) {
  const uint64_t handle = lt::host_handle(lightHandle);
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  const lt::desc_mirror* md = lt::mirror_of(operationDesc);
  if (!md || requestedAlgoCount <= 0 || !heuristicResultsArray || !returnAlgoCount)
    return CUBLAS_STATUS_INVALID_VALUE;
  vgpu::protocol::lt::heuristic_problem problem{};
  problem.desc = md->d;
  if (!lt::copy_layouts(&problem.a, &problem.b, &problem.c, &problem.d, Adesc, Bdesc, Cdesc, Ddesc))
    return CUBLAS_STATUS_INVALID_VALUE;
  if (preference) {
    const lt::pref_mirror* mp = lt::mirror_of(preference);
    if (!mp) return CUBLAS_STATUS_INVALID_VALUE;
    problem.pref = mp->p;
  }  // NULL: the defaults (no workspace), what an empty preference says
  vgpu::protocol::lt::shape shape;
  if (const cublasStatus_t bad = vgpu::protocol::lt::check_problem(problem.desc, problem.a, problem.b, problem.c,
                                                                   problem.d, &shape, nullptr);
      bad != CUBLAS_STATUS_SUCCESS)
    return bad;
  const int32_t want = std::min(requestedAlgoCount, vgpu::protocol::lt::kMaxHeuristicResults);
  const uint64_t bytes = sizeof(vgpu::protocol::lt::heuristic_result) * static_cast<uint64_t>(want);

  // The results come back in the data area: hold the channel from request to read.
  vgpu::shim::channel_guard g;
  if (g.status() != cudaSuccess) return vgpu::shim::cublaslt_status_from_wire(g.status());
  if (bytes > g->data_size()) return CUBLAS_STATUS_INVALID_VALUE;
  wire::vgpuLtMatmulAlgoGetHeuristic_req req{};
  req.handle = handle;
  req.requested = want;
  req.results = vgpu::protocol::data_ref{0, bytes};
  wire::vgpuLtMatmulAlgoGetHeuristic_rep rep{};
  uint64_t seq = 0;
  cudaError_t st = g->submit(static_cast<uint16_t>(vgpu::protocol::call_id::vgpuLtMatmulAlgoGetHeuristic), 0, &req,
                             wire::vgpuLtMatmulAlgoGetHeuristic_req::wire_size(), &problem, sizeof problem, bytes,
                             &seq);
  if (st == cudaSuccess) st = g->wait(seq, &rep, wire::vgpuLtMatmulAlgoGetHeuristic_rep::wire_size());
  if (st != cudaSuccess) return vgpu::shim::cublaslt_status_from_wire(st);
  if (rep.returned < 0 || rep.returned > want) return CUBLAS_STATUS_INTERNAL_ERROR;
  for (int32_t i = 0; i < rep.returned; ++i) {
    vgpu::protocol::lt::heuristic_result r;
    std::memcpy(&r, g->data() + i * sizeof r, sizeof r);
    cublasLtMatmulHeuristicResult_t& out = heuristicResultsArray[i];
    std::memset(&out, 0, sizeof out);
    static_assert(sizeof out.algo == sizeof r.chosen);
    std::memcpy(&out.algo, &r.chosen, sizeof out.algo);
    out.workspaceSize = r.workspace_size;
    out.state = static_cast<cublasStatus_t>(r.state);
    out.wavesCount = r.waves_count;
  }
  *returnAlgoCount = rep.returned;
  // As cuBLASLt: no algorithm for this problem is NOT_SUPPORTED.
  return rep.returned == 0 ? CUBLAS_STATUS_NOT_SUPPORTED : CUBLAS_STATUS_SUCCESS;
}

extern "C" cublasStatus_t cublasLtMatmul(cublasLtHandle_t lightHandle, cublasLtMatmulDesc_t computeDesc,
                                         const void* alpha, const void* A, cublasLtMatrixLayout_t Adesc,
                                         const void* B, cublasLtMatrixLayout_t Bdesc, const void* beta,
                                         const void* C, cublasLtMatrixLayout_t Cdesc, void* D,
                                         cublasLtMatrixLayout_t Ddesc, const cublasLtMatmulAlgo_t* algo,
                                         void* workspace, size_t workspaceSizeInBytes, cudaStream_t stream) {
  const uint64_t handle = lt::host_handle(lightHandle);
  if (!handle) return CUBLAS_STATUS_NOT_INITIALIZED;
  const lt::desc_mirror* md = lt::mirror_of(computeDesc);
  if (!md) return CUBLAS_STATUS_INVALID_VALUE;
  vgpu::protocol::lt::matmul_problem problem{};
  problem.desc = md->d;
  if (!lt::copy_layouts(&problem.a, &problem.b, &problem.c, &problem.d, Adesc, Bdesc, Cdesc, Ddesc))
    return CUBLAS_STATUS_INVALID_VALUE;
  // The checks the host makes again, here so that a bad problem fails now
  // (a posted call's failure would only show at the next synchronisation).
  vgpu::protocol::lt::shape shape;
  if (const cublasStatus_t bad = vgpu::protocol::lt::check_problem(problem.desc, problem.a, problem.b, problem.c,
                                                                   problem.d, &shape, nullptr);
      bad != CUBLAS_STATUS_SUCCESS)
    return bad;
  if (algo) {
    static_assert(sizeof *algo == sizeof problem.chosen);
    std::memcpy(&problem.chosen, algo, sizeof problem.chosen);
    problem.has_algo = 1;
  }
  vgpu::protocol::scalar16 a{}, b{};
  cublasStatus_t st = lt::encode_scalar(alpha, md->d, &a);
  if (st == CUBLAS_STATUS_SUCCESS) st = lt::encode_scalar(beta, md->d, &b);
  if (st != CUBLAS_STATUS_SUCCESS) return st;
  return vgpu::remote::vgpuLtMatmul(handle, a, b, const_cast<void*>(A), const_cast<void*>(B), const_cast<void*>(C), D,
                                    workspace, workspaceSizeInBytes, stream,
                                    vgpu::protocol::blob{&problem, static_cast<uint32_t>(sizeof problem)});
}
