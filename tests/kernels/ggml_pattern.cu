// vgpu-ggml-pattern: what ggml-cuda (llama.cpp, inside Ollama) does with a GPU,
// in one ordinary program, so that one run says whether such an engine works
// through vgpu:
//   - a VMM memory pool: one large reserved VA range, grown by mapping
//     granularity-sized physical chunks at its end (cuMemCreate, cuMemMap,
//     cuMemSetAccess), used as one contiguous buffer;
//   - "model load": every tensor a cudaMemcpyAsync on cudaStreamPerThread
//     followed by cudaStreamSynchronize;
//   - cuBLAS in fp16: cublasGemmEx (fp16 in, fp32 compute) and
//     cublasGemmStridedBatchedEx (attention-shaped batches);
//   - a token step captured into a CUDA graph (relaxed mode), replayed many
//     times; before each replay the kernel node that writes the KV cache gets
//     its destination pointer rewritten in place (cudaGraphKernelNodeGetParams,
//     compare the function, rewrite kernelParams[i], cudaGraphExecKernelNodeSetParams),
//     as llama.cpp does on every token.
//
//   vgpu-ggml-pattern [--expect-vgpu] [--reference] [--steps N]
//
// --reference: the mediator runs the CPU reference executor, which records
// kernels instead of running them: kernel results are not checked (the graph's
// structure, parameter round trips, the pool, copies and cuBLAS results are).
// With a GPU (natively or through vgpu) every result is checked against the
// same computation on the CPU. Prints `PASS <check>` / `FAIL <check>: why`;
// exits 1 when a check failed.
#include <cublas_v2.h>
#include <cuda.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <dlfcn.h>

#include <cmath>
#include <cstdarg>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

int g_failed = 0;
int g_passed = 0;

void pass(const char* what) {
  ++g_passed;
  std::printf("PASS %s\n", what);
}

void fail(const char* what, const char* fmt, ...) {
  ++g_failed;
  std::printf("FAIL %s: ", what);
  va_list ap;
  va_start(ap, fmt);
  std::vprintf(fmt, ap);
  va_end(ap);
  std::printf("\n");
}

#define CK_RT(what, call)                                                               \
  do {                                                                                  \
    const cudaError_t e_ = (call);                                                      \
    if (e_ != cudaSuccess) {                                                            \
      fail(what, "%s returned %s (%s)", #call, cudaGetErrorName(e_), cudaGetErrorString(e_)); \
      return false;                                                                     \
    }                                                                                   \
  } while (0)

#define CK_CU(what, call)                                                   \
  do {                                                                      \
    const CUresult r_ = (call);                                             \
    if (r_ != CUDA_SUCCESS) {                                               \
      const char* n_ = nullptr;                                             \
      cuGetErrorName(r_, &n_);                                              \
      fail(what, "%s returned %s", #call, n_ ? n_ : "?");                   \
      return false;                                                         \
    }                                                                       \
  } while (0)

#define CK_BLAS(what, call)                                                        \
  do {                                                                             \
    const cublasStatus_t s_ = (call);                                              \
    if (s_ != CUBLAS_STATUS_SUCCESS) {                                             \
      fail(what, "%s returned %s", #call, cublasGetStatusName(s_));                \
      return false;                                                                \
    }                                                                              \
  } while (0)

// ---------------------------------------------------------------- the VMM pool
// As ggml-cuda's pool: reserve once, map chunks at the end as it grows.
class vmm_pool {
 public:
  bool init(const char* what, int device, size_t reserve) {
    CK_CU(what, cuDeviceGet(&dev_, device));
    int vmm = 0;
    CK_CU(what, cuDeviceGetAttribute(&vmm, CU_DEVICE_ATTRIBUTE_VIRTUAL_MEMORY_MANAGEMENT_SUPPORTED, dev_));
    if (!vmm) {
      fail(what, "the device says it has no virtual memory management");
      return false;
    }
    CUmemAllocationProp prop = {};
    prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
    prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
    prop.location.id = dev_;
    CK_CU(what, cuMemGetAllocationGranularity(&granularity_, &prop, CU_MEM_ALLOC_GRANULARITY_RECOMMENDED));
    if (granularity_ == 0 || (granularity_ & (granularity_ - 1)) != 0) {
      fail(what, "granularity %zu is not a power of two", granularity_);
      return false;
    }
    reserved_ = (reserve + granularity_ - 1) / granularity_ * granularity_;
    CK_CU(what, cuMemAddressReserve(&base_, reserved_, 0, 0, 0));
    return true;
  }

  // Returns a pointer to `bytes` more of the contiguous buffer, mapping new
  // chunks at the end when needed.
  bool alloc(const char* what, size_t bytes, CUdeviceptr* out) {
    bytes = (bytes + 255) / 256 * 256;
    while (used_ + bytes > mapped_) {
      if (mapped_ + granularity_ > reserved_) {
        fail(what, "pool exhausted (%zu reserved)", reserved_);
        return false;
      }
      CUmemAllocationProp prop = {};
      prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
      prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
      prop.location.id = dev_;
      CUmemGenericAllocationHandle h = 0;
      CK_CU(what, cuMemCreate(&h, granularity_, &prop, 0));
      CK_CU(what, cuMemMap(base_ + mapped_, granularity_, 0, h, 0));
      // The mapping keeps the memory; the handle can go (ggml releases at once).
      CK_CU(what, cuMemRelease(h));
      CUmemAccessDesc access = {};
      access.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
      access.location.id = dev_;
      access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
      CK_CU(what, cuMemSetAccess(base_ + mapped_, granularity_, &access, 1));
      mapped_ += granularity_;
      ++chunks_;
    }
    *out = base_ + used_;
    used_ += bytes;
    return true;
  }

  bool destroy(const char* what) {
    if (mapped_) CK_CU(what, cuMemUnmap(base_, mapped_));
    if (base_) CK_CU(what, cuMemAddressFree(base_, reserved_));
    base_ = 0;
    mapped_ = used_ = 0;
    return true;
  }

  size_t granularity() const { return granularity_; }
  int chunks() const { return chunks_; }

 private:
  CUdevice dev_ = 0;
  size_t granularity_ = 0;
  size_t reserved_ = 0;
  CUdeviceptr base_ = 0;
  size_t mapped_ = 0;
  size_t used_ = 0;
  int chunks_ = 0;
};

// ---------------------------------------------------------------- kernels
__global__ void k_rms_norm(const float* x, float* y, int n, float eps) {
  __shared__ float part[256];
  float s = 0.f;
  for (int i = threadIdx.x; i < n; i += blockDim.x) s += x[i] * x[i];
  part[threadIdx.x] = s;
  __syncthreads();
  for (int w = blockDim.x / 2; w > 0; w /= 2) {
    if (threadIdx.x < w) part[threadIdx.x] += part[threadIdx.x + w];
    __syncthreads();
  }
  const float scale = rsqrtf(part[0] / n + eps);
  for (int i = threadIdx.x; i < n; i += blockDim.x) y[i] = x[i] * scale;
}

__global__ void k_to_half(const float* x, __half* y, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) y[i] = __float2half(x[i]);
}

// The KV-cache write whose destination llama.cpp rewrites on every token.
__global__ void k_copy_row(const float* src, float* dst, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) dst[i] = src[i];
}

__global__ void k_add_scaled(float* x, const float* o, float s, int n) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) x[i] += s * o[i];
}

// ---------------------------------------------------------------- CPU side
float h2f(__half h) { return __half2float(h); }

// Small integers / 8: exact in fp16, sums exact in fp32.
float exact_value(uint32_t i, uint32_t salt) { return static_cast<float>(static_cast<int>((i * 2654435761u + salt) >> 28) - 8) / 8.f; }

struct options {
  bool expect_vgpu = false;
  bool reference = false;
  int steps = 32;
};

constexpr int kDim = 256;      // model width
constexpr int kTokens = 64;    // KV cache rows
constexpr float kEps = 1e-5f;
constexpr float kResidual = 0.125f;

// ---------------------------------------------------------------- checks
struct model {
  vmm_pool pool;
  CUdeviceptr w16 = 0;    // kDim x kDim fp16 (column-major)
  CUdeviceptr x = 0;      // kDim fp32, the residual stream
  CUdeviceptr h = 0;      // kDim fp32
  CUdeviceptr h16 = 0;    // kDim fp16
  CUdeviceptr o = 0;      // kDim fp32
  CUdeviceptr kv = 0;     // kTokens x kDim fp32
  std::vector<__half> w_host;
  std::vector<float> x_host;
};

bool load_model(model& m) {
  const char* what = "model load: VMM pool + cudaMemcpyAsync on cudaStreamPerThread";
  // A reservation much larger than what is used, as ggml's pool does.
  if (!m.pool.init(what, 0, size_t(1) << 32)) return false;
  const size_t wbytes = size_t(kDim) * kDim * sizeof(__half);
  if (!m.pool.alloc(what, wbytes, &m.w16) || !m.pool.alloc(what, kDim * 4, &m.x) ||
      !m.pool.alloc(what, kDim * 4, &m.h) || !m.pool.alloc(what, kDim * 2, &m.h16) ||
      !m.pool.alloc(what, kDim * 4, &m.o) || !m.pool.alloc(what, size_t(kTokens) * kDim * 4, &m.kv)) {
    return false;
  }
  // A tensor that straddles chunks: grow until the pool has at least 2 chunks
  // and put one there.
  CUdeviceptr straddle = 0;
  const size_t g = m.pool.granularity();
  if (!m.pool.alloc(what, g + g / 2, &straddle)) return false;
  m.w_host.resize(size_t(kDim) * kDim);
  for (size_t i = 0; i < m.w_host.size(); ++i) m.w_host[i] = __float2half(exact_value(uint32_t(i), 7) / 16.f);
  m.x_host.resize(kDim);
  for (int i = 0; i < kDim; ++i) m.x_host[i] = exact_value(uint32_t(i), 3);
  std::vector<uint8_t> big(g + g / 2);
  for (size_t i = 0; i < big.size(); ++i) big[i] = uint8_t(i * 131 + 7);
  // ggml: one async copy per tensor on the per-thread stream, then a sync.
  CK_RT(what, cudaMemcpyAsync(reinterpret_cast<void*>(m.w16), m.w_host.data(), wbytes, cudaMemcpyHostToDevice,
                              cudaStreamPerThread));
  CK_RT(what, cudaStreamSynchronize(cudaStreamPerThread));
  CK_RT(what, cudaMemcpyAsync(reinterpret_cast<void*>(m.x), m.x_host.data(), kDim * 4, cudaMemcpyHostToDevice,
                              cudaStreamPerThread));
  CK_RT(what, cudaStreamSynchronize(cudaStreamPerThread));
  CK_RT(what, cudaMemcpyAsync(reinterpret_cast<void*>(straddle), big.data(), big.size(), cudaMemcpyHostToDevice,
                              cudaStreamPerThread));
  CK_RT(what, cudaStreamSynchronize(cudaStreamPerThread));
  CK_RT(what, cudaMemsetAsync(reinterpret_cast<void*>(m.kv), 0, size_t(kTokens) * kDim * 4, cudaStreamPerThread));
  std::vector<uint8_t> back(big.size());
  CK_RT(what, cudaMemcpy(back.data(), reinterpret_cast<void*>(straddle), back.size(), cudaMemcpyDeviceToHost));
  if (back != big) {
    fail(what, "a tensor spanning two mapped chunks did not read back as written");
    return false;
  }
  std::vector<__half> wback(m.w_host.size());
  CK_RT(what, cudaMemcpy(wback.data(), reinterpret_cast<void*>(m.w16), wbytes, cudaMemcpyDeviceToHost));
  if (std::memcmp(wback.data(), m.w_host.data(), wbytes) != 0) {
    fail(what, "the weights did not read back as written");
    return false;
  }
  if (m.pool.chunks() < 2) {
    fail(what, "the pool mapped %d chunk(s); the test needs a tensor across two", m.pool.chunks());
    return false;
  }
  pass(what);
  return true;
}

// cublasGemmEx fp16 x fp16 -> fp32 (compute 32F) and a strided batched fp16 GEMM.
bool gemms(model& m) {
  const char* what = "cuBLAS: GemmEx fp16 (32F compute) and GemmStridedBatchedEx fp16";
  cublasHandle_t blas = nullptr;
  CK_BLAS(what, cublasCreate(&blas));
  CK_BLAS(what, cublasSetMathMode(blas, CUBLAS_DEFAULT_MATH));
  CK_BLAS(what, cublasSetStream(blas, cudaStreamPerThread));
  // o = W * x16 (x as fp16 via the host, exact values)
  std::vector<__half> x16(kDim);
  for (int i = 0; i < kDim; ++i) x16[i] = __float2half(m.x_host[i]);
  CK_RT(what, cudaMemcpy(reinterpret_cast<void*>(m.h16), x16.data(), kDim * 2, cudaMemcpyHostToDevice));
  const float one = 1.f, zero = 0.f;
  CK_BLAS(what, cublasGemmEx(blas, CUBLAS_OP_N, CUBLAS_OP_N, kDim, 1, kDim, &one, reinterpret_cast<void*>(m.w16),
                             CUDA_R_16F, kDim, reinterpret_cast<void*>(m.h16), CUDA_R_16F, kDim, &zero,
                             reinterpret_cast<void*>(m.o), CUDA_R_32F, kDim, CUBLAS_COMPUTE_32F,
                             CUBLAS_GEMM_DEFAULT));
  std::vector<float> o(kDim);
  CK_RT(what, cudaStreamSynchronize(cudaStreamPerThread));
  CK_RT(what, cudaMemcpy(o.data(), reinterpret_cast<void*>(m.o), kDim * 4, cudaMemcpyDeviceToHost));
  for (int r = 0; r < kDim; ++r) {
    double want = 0;
    for (int k = 0; k < kDim; ++k) want += double(h2f(m.w_host[size_t(k) * kDim + r])) * h2f(x16[k]);
    if (std::fabs(o[r] - want) > 1e-3 * std::max(1.0, std::fabs(want))) {
      fail(what, "GemmEx row %d: %g, expected %g", r, double(o[r]), want);
      cublasDestroy(blas);
      return false;
    }
  }
  // Attention-shaped: 8 heads of (32 x 16) * (16 x 24), fp16 in and out, 32F compute.
  constexpr int heads = 8, M = 32, N = 24, K = 16;
  std::vector<__half> a(size_t(heads) * M * K), b(size_t(heads) * K * N), c(size_t(heads) * M * N);
  for (size_t i = 0; i < a.size(); ++i) a[i] = __float2half(exact_value(uint32_t(i), 11));
  for (size_t i = 0; i < b.size(); ++i) b[i] = __float2half(exact_value(uint32_t(i), 13));
  void *da = nullptr, *db = nullptr, *dc = nullptr;
  CK_RT(what, cudaMalloc(&da, a.size() * 2));
  CK_RT(what, cudaMalloc(&db, b.size() * 2));
  CK_RT(what, cudaMalloc(&dc, c.size() * 2));
  CK_RT(what, cudaMemcpy(da, a.data(), a.size() * 2, cudaMemcpyHostToDevice));
  CK_RT(what, cudaMemcpy(db, b.data(), b.size() * 2, cudaMemcpyHostToDevice));
  CK_BLAS(what, cublasGemmStridedBatchedEx(blas, CUBLAS_OP_N, CUBLAS_OP_N, M, N, K, &one, da, CUDA_R_16F, M,
                                           int64_t(M) * K, db, CUDA_R_16F, K, int64_t(K) * N, &zero, dc,
                                           CUDA_R_16F, M, int64_t(M) * N, heads, CUBLAS_COMPUTE_32F,
                                           CUBLAS_GEMM_DEFAULT));
  CK_RT(what, cudaStreamSynchronize(cudaStreamPerThread));
  CK_RT(what, cudaMemcpy(c.data(), dc, c.size() * 2, cudaMemcpyDeviceToHost));
  cudaFree(da);
  cudaFree(db);
  cudaFree(dc);
  CK_BLAS(what, cublasDestroy(blas));
  for (int hd = 0; hd < heads; ++hd)
    for (int j = 0; j < N; ++j)
      for (int i = 0; i < M; ++i) {
        double want = 0;
        for (int k = 0; k < K; ++k)
          want += double(h2f(a[size_t(hd) * M * K + size_t(k) * M + i])) * h2f(b[size_t(hd) * K * N + size_t(j) * K + k]);
        const float got = h2f(c[size_t(hd) * M * N + size_t(j) * M + i]);
        if (std::fabs(got - want) > 1e-2 * std::max(1.0, std::fabs(want))) {
          fail(what, "batch %d (%d,%d): %g, expected %g", hd, i, j, double(got), want);
          return false;
        }
      }
  pass(what);
  return true;
}

// The CPU's version of one token step (what the graph computes).
void cpu_step(std::vector<float>& x, std::vector<float>& kv, const std::vector<__half>& w, int pos) {
  double ss = 0;
  for (float v : x) ss += double(v) * v;
  const float scale = 1.f / std::sqrt(float(ss / kDim) + kEps);
  std::vector<float> h16(kDim), o(kDim);
  for (int i = 0; i < kDim; ++i) h16[i] = h2f(__float2half(x[i] * scale));
  for (int r = 0; r < kDim; ++r) {
    double acc = 0;
    for (int k = 0; k < kDim; ++k) acc += double(h2f(w[size_t(k) * kDim + r])) * h16[k];
    o[r] = float(acc);
  }
  for (int i = 0; i < kDim; ++i) kv[size_t(pos) * kDim + i] = o[i];
  for (int i = 0; i < kDim; ++i) x[i] += kResidual * o[i];
}

bool graph_steps(model& m, const options& opt) {
  const char* what = "graph: token step captured once, replayed with the KV pointer rewritten";
  cudaStream_t s = nullptr;
  CK_RT(what, cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
  cublasHandle_t blas = nullptr;
  CK_BLAS(what, cublasCreate(&blas));
  CK_BLAS(what, cublasSetStream(blas, s));
  // cuBLAS must not allocate while captured: give it a workspace first.
  void* ws = nullptr;
  CK_RT(what, cudaMalloc(&ws, 4 << 20));
  CK_BLAS(what, cublasSetWorkspace(blas, ws, 4 << 20));
  const float one = 1.f, zero = 0.f;
  float* x = reinterpret_cast<float*>(m.x);
  float* h = reinterpret_cast<float*>(m.h);
  __half* h16 = reinterpret_cast<__half*>(m.h16);
  float* o = reinterpret_cast<float*>(m.o);
  float* kv = reinterpret_cast<float*>(m.kv);
  const int n = kDim;
  const float eps = kEps, res = kResidual;

  cudaGraph_t graph = nullptr;
  CK_RT(what, cudaStreamBeginCapture(s, cudaStreamCaptureModeRelaxed));
  cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
  CK_RT(what, cudaStreamIsCapturing(s, &cs));
  if (cs != cudaStreamCaptureStatusActive) {
    fail(what, "cudaStreamIsCapturing says %d during capture", int(cs));
    return false;
  }
  k_rms_norm<<<1, 256, 0, s>>>(x, h, n, eps);
  k_to_half<<<(n + 127) / 128, 128, 0, s>>>(h, h16, n);
  CK_BLAS(what, cublasGemmEx(blas, CUBLAS_OP_N, CUBLAS_OP_N, kDim, 1, kDim, &one, reinterpret_cast<void*>(m.w16),
                             CUDA_R_16F, kDim, h16, CUDA_R_16F, kDim, &zero, o, CUDA_R_32F, kDim,
                             CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
  k_copy_row<<<(n + 127) / 128, 128, 0, s>>>(o, kv, n);  // row 0 for now: rewritten per step
  k_add_scaled<<<(n + 127) / 128, 128, 0, s>>>(x, o, res, n);
  CK_RT(what, cudaStreamEndCapture(s, &graph));
  CK_RT(what, cudaStreamIsCapturing(s, &cs));
  if (cs != cudaStreamCaptureStatusNone) {
    fail(what, "cudaStreamIsCapturing says %d after EndCapture", int(cs));
    return false;
  }
  cudaGraphExec_t exec = nullptr;
  CK_RT(what, cudaGraphInstantiate(&exec, graph, 0));

  // Find the KV-copy node as llama.cpp does: every kernel node's params, function compared.
  size_t count = 0;
  CK_RT(what, cudaGraphGetNodes(graph, nullptr, &count));
  std::vector<cudaGraphNode_t> nodes(count);
  CK_RT(what, cudaGraphGetNodes(graph, nodes.data(), &count));
  cudaGraphNode_t copy_node = nullptr;
  int kernels = 0, library_kernels = 0;
  for (cudaGraphNode_t nd : nodes) {
    cudaGraphNodeType t{};
    CK_RT(what, cudaGraphNodeGetType(nd, &t));
    if (t != cudaGraphNodeTypeKernel) continue;
    ++kernels;
    cudaKernelNodeParams p{};
    const cudaError_t gp = cudaGraphKernelNodeGetParams(nd, &p);
    // A kernel the program did not register (cuBLAS's, captured inside the
    // GEMM) has no runtime function: NVIDIA's runtime answers
    // cudaErrorInvalidDeviceFunction, and llama.cpp skips such nodes.
    if (gp == cudaErrorInvalidDeviceFunction) {
      cudaGetLastError();
      ++library_kernels;
      continue;
    }
    CK_RT(what, gp);
    if (p.func == reinterpret_cast<void*>(k_copy_row)) {
      copy_node = nd;
      const float* const* dst = static_cast<const float* const*>(p.kernelParams[1]);
      if (*dst != kv || p.gridDim.x != unsigned((n + 127) / 128) || p.blockDim.x != 128) {
        fail(what, "the KV-copy node's parameters read back wrong (dst %p, expected %p; grid %u block %u)",
             static_cast<const void*>(*dst), static_cast<const void*>(kv), p.gridDim.x, p.blockDim.x);
        return false;
      }
    }
  }
  // 4 of ours plus at least one of cuBLAS's (the reference executor runs
  // cuBLAS calls at once, on the CPU: they add no node there).
  if (!copy_node || kernels - library_kernels != 4 || (!opt.reference && library_kernels < 1)) {
    fail(what, "%zu nodes, %d kernel nodes (%d of a library), KV-copy node %s", count, kernels, library_kernels,
         copy_node ? "found" : "NOT found");
    return false;
  }
  std::vector<float> xc = m.x_host, kvc(size_t(kTokens) * kDim, 0.f);
  for (int step = 0; step < opt.steps; ++step) {
    const int pos = step % kTokens;
    cudaKernelNodeParams p{};
    CK_RT(what, cudaGraphKernelNodeGetParams(copy_node, &p));
    if (p.func != reinterpret_cast<void*>(k_copy_row)) {
      fail(what, "step %d: the node's function changed", step);
      return false;
    }
    // Rewrite the destination in place, as llama.cpp does with the returned array.
    *static_cast<float**>(p.kernelParams[1]) = kv + size_t(pos) * kDim;
    CK_RT(what, cudaGraphExecKernelNodeSetParams(exec, copy_node, &p));
    CK_RT(what, cudaGraphLaunch(exec, s));
    cpu_step(xc, kvc, m.w_host, pos);
  }
  CK_RT(what, cudaStreamSynchronize(s));
  cudaKernelNodeParams last{};
  CK_RT(what, cudaGraphKernelNodeGetParams(copy_node, &last));
  CK_RT(what, cudaGraphExecDestroy(exec));
  CK_RT(what, cudaGraphDestroy(graph));
  CK_BLAS(what, cublasDestroy(blas));
  CK_RT(what, cudaFree(ws));
  CK_RT(what, cudaStreamDestroy(s));
  if (opt.reference) {
    pass("graph: captured, parameters read back and rewritten, replayed (reference: kernel results not checked)");
    return true;
  }
  std::vector<float> xg(kDim), kvg(size_t(kTokens) * kDim);
  CK_RT(what, cudaMemcpy(xg.data(), x, kDim * 4, cudaMemcpyDeviceToHost));
  CK_RT(what, cudaMemcpy(kvg.data(), kv, kvg.size() * 4, cudaMemcpyDeviceToHost));
  for (size_t i = 0; i < kvg.size(); ++i)
    if (std::fabs(kvg[i] - kvc[i]) > 2e-3f * std::max(1.f, std::fabs(kvc[i]))) {
      fail(what, "KV cache [%zu] (row %zu) = %g, expected %g", i, i / kDim, double(kvg[i]), double(kvc[i]));
      return false;
    }
  for (int i = 0; i < kDim; ++i)
    if (std::fabs(xg[i] - xc[i]) > 2e-3f * std::max(1.f, std::fabs(xc[i]))) {
      fail(what, "x[%d] = %g, expected %g", i, double(xg[i]), double(xc[i]));
      return false;
    }
  pass(what);
  return true;
}

bool shim_loaded() { return dlsym(RTLD_DEFAULT, "vgpuShimInfo") != nullptr; }

}  // namespace

int main(int argc, char** argv) {
  options opt;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--expect-vgpu") opt.expect_vgpu = true;
    else if (a == "--reference") opt.reference = true;
    else if (a == "--steps" && i + 1 < argc) opt.steps = std::atoi(argv[++i]);
    else {
      std::fprintf(stderr, "usage: vgpu-ggml-pattern [--expect-vgpu] [--reference] [--steps N]\n");
      return 2;
    }
  }
  if (opt.expect_vgpu && !shim_loaded()) {
    fail("through vgpu", "vgpu's libcudart.so.13 is not the one loaded (check LD_LIBRARY_PATH)");
    return 1;
  }
  if (cuInit(0) != CUDA_SUCCESS) {
    fail("cuInit", "no driver");
    return 1;
  }
  model m;
  if (load_model(m)) {
    gemms(m);
    graph_steps(m, opt);
  }
  m.pool.destroy("pool teardown");
  std::printf("vgpu-ggml-pattern: %d passed, %d failed\n", g_passed, g_failed);
  return g_failed == 0 && g_passed > 0 ? 0 : 1;
}
