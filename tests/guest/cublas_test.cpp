// A cuBLAS guest program: built against NVIDIA's headers and libcublas, run
// unchanged on vgpu's libcublas.so.13 (LD_LIBRARY_PATH) or natively. Results of
// small problems are checked against plain loops here. Prints PASS/FAIL per
// check (SKIP, never counted as a pass, for checks that only mean something on
// vgpu) and exits non-zero when anything failed.
//
//   vgpu-cublas-test [--expect-vgpu] [checks]     every check (the default)
//   vgpu-cublas-test [--expect-vgpu] bench [--seconds S] [--size N]
//       posted SGEMM call rate (N x N x N, default 64), calls per second
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>
#include <dlfcn.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

namespace {

int g_pass = 0, g_fail = 0, g_skip = 0;
bool g_vgpu = false;

void check(bool ok, const char* what, const std::string& detail = "") {
  std::printf("%s %s%s%s\n", ok ? "PASS" : "FAIL", what, detail.empty() ? "" : ": ", detail.c_str());
  ok ? ++g_pass : ++g_fail;
}

void skip(const char* what, const char* why) {
  std::printf("SKIP %s: %s\n", what, why);
  ++g_skip;
}

bool st_ok(cublasStatus_t st, const char* what) {
  if (st == CUBLAS_STATUS_SUCCESS) return true;
  check(false, what, std::string("status ") + cublasGetStatusName(st));
  return false;
}

// Deterministic small values, exact in half precision too.
std::vector<float> values(size_t n, int seed) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<float>(static_cast<int>((i * 7 + static_cast<size_t>(seed) * 13) % 11) - 5) / 4.0f;
  return v;
}

template <typename T>
T* to_device(const std::vector<T>& h) {
  void* d = nullptr;
  if (cudaMalloc(&d, h.size() * sizeof(T) + 16) != cudaSuccess) return nullptr;
  cudaMemcpy(d, h.data(), h.size() * sizeof(T), cudaMemcpyHostToDevice);
  return static_cast<T*>(d);
}

template <typename T>
std::vector<T> from_device(const T* d, size_t n) {
  std::vector<T> h(n);
  cudaMemcpy(h.data(), d, n * sizeof(T), cudaMemcpyDeviceToHost);
  return h;
}

// Element (i, j) of op(X), X column-major with leading dimension ld.
template <typename T>
T at(const std::vector<T>& x, int ld, bool trans, int i, int j) {
  return trans ? x[static_cast<size_t>(i) * ld + j] : x[static_cast<size_t>(j) * ld + i];
}

// C = alpha op(A) op(B) + beta C, in double.
template <typename T>
std::vector<double> ref_gemm(bool ta, bool tb, int m, int n, int k, double alpha, const std::vector<T>& A, int lda,
                             const std::vector<T>& B, int ldb, double beta, const std::vector<T>& C, int ldc) {
  std::vector<double> out(C.begin(), C.end());
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < m; ++i) {
      double s = 0;
      for (int p = 0; p < k; ++p) s += double(at(A, lda, ta, i, p)) * double(at(B, ldb, tb, p, j));
      out[static_cast<size_t>(j) * ldc + i] = alpha * s + beta * double(C[static_cast<size_t>(j) * ldc + i]);
    }
  return out;
}

template <typename T>
double max_diff(const std::vector<T>& got, const std::vector<double>& want) {
  double d = 0;
  for (size_t i = 0; i < want.size(); ++i) d = std::fmax(d, std::fabs(double(got[i]) - want[i]));
  return d;
}

std::string diff_text(double d) { return "max |diff| " + std::to_string(d); }

// --- checks -------------------------------------------------------------------------

void check_handle_state(cublasHandle_t h) {
  int version = 0;
  const bool v_ok = cublasGetVersion(h, &version) == CUBLAS_STATUS_SUCCESS && version >= 10000;
  check(v_ok, "cublasGetVersion", "version " + std::to_string(version));
  int major = -1;
  const bool p_ok = cublasGetProperty(MAJOR_VERSION, &major) == CUBLAS_STATUS_SUCCESS && major == version / 10000;
  check(p_ok, "cublasGetProperty(MAJOR_VERSION)", "major " + std::to_string(major));
  check(std::strcmp(cublasGetStatusName(CUBLAS_STATUS_INVALID_VALUE), "CUBLAS_STATUS_INVALID_VALUE") == 0,
        "cublasGetStatusName");
  check(cublasGetStatusString(CUBLAS_STATUS_SUCCESS) != nullptr, "cublasGetStatusString");

  cudaStream_t s = nullptr, got = reinterpret_cast<cudaStream_t>(1);
  cudaStreamCreate(&s);
  check(cublasSetStream(h, s) == CUBLAS_STATUS_SUCCESS && cublasGetStream(h, &got) == CUBLAS_STATUS_SUCCESS &&
            got == s,
        "cublasSetStream/GetStream");
  cublasSetStream(h, nullptr);
  cudaStreamDestroy(s);

  cublasPointerMode_t pm = CUBLAS_POINTER_MODE_HOST;
  check(cublasSetPointerMode(h, CUBLAS_POINTER_MODE_DEVICE) == CUBLAS_STATUS_SUCCESS &&
            cublasGetPointerMode(h, &pm) == CUBLAS_STATUS_SUCCESS && pm == CUBLAS_POINTER_MODE_DEVICE,
        "cublasSetPointerMode/GetPointerMode");
  cublasSetPointerMode(h, CUBLAS_POINTER_MODE_HOST);

  cublasMath_t mm = CUBLAS_DEFAULT_MATH;
  check(cublasSetMathMode(h, CUBLAS_TF32_TENSOR_OP_MATH) == CUBLAS_STATUS_SUCCESS &&
            cublasGetMathMode(h, &mm) == CUBLAS_STATUS_SUCCESS && mm == CUBLAS_TF32_TENSOR_OP_MATH,
        "cublasSetMathMode/GetMathMode");
  cublasSetMathMode(h, CUBLAS_DEFAULT_MATH);

  cublasAtomicsMode_t am = CUBLAS_ATOMICS_NOT_ALLOWED;
  check(cublasSetAtomicsMode(h, CUBLAS_ATOMICS_ALLOWED) == CUBLAS_STATUS_SUCCESS &&
            cublasGetAtomicsMode(h, &am) == CUBLAS_STATUS_SUCCESS && am == CUBLAS_ATOMICS_ALLOWED,
        "cublasSetAtomicsMode/GetAtomicsMode");
  cublasSetAtomicsMode(h, CUBLAS_ATOMICS_NOT_ALLOWED);

  // A workspace of the program's own, on a handle of its own: cublasSetWorkspace
  // (h, nullptr, 0) does not give a handle back the library's workspace, it
  // leaves it with none, and then NVIDIA's reductions, trsm and the like fail
  // (EXECUTION_FAILED, NOT_SUPPORTED, ALLOC_FAILED). The handle goes before
  // the memory it was given.
  cublasHandle_t wh = nullptr;
  void* ws = nullptr;
  const bool ws_ok = cublasCreate(&wh) == CUBLAS_STATUS_SUCCESS && cudaMalloc(&ws, 1 << 20) == cudaSuccess &&
                     cublasSetWorkspace(wh, ws, 1 << 20) == CUBLAS_STATUS_SUCCESS;
  const float one = 1.0f, zero = 0.0f;
  float* d = ws_ok ? to_device(std::vector<float>{2.0f, 0.0f}) : nullptr;  // C = A B, 1 x 1, into d[1]
  const bool used = d != nullptr &&
                    cublasSgemm(wh, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, &one, d, 1, d, 1, &zero, d + 1, 1) ==
                        CUBLAS_STATUS_SUCCESS &&
                    cudaDeviceSynchronize() == cudaSuccess && from_device(d, 2)[1] == 4.0f;
  const bool gone = wh != nullptr && cublasDestroy(wh) == CUBLAS_STATUS_SUCCESS;
  check(ws_ok && used && gone, "cublasSetWorkspace (a handle of its own)");
  cudaFree(d);
  cudaFree(ws);
  check(cublasLoggerConfigure(0, 0, 0, nullptr) == CUBLAS_STATUS_SUCCESS, "cublasLoggerConfigure");
}

void check_sgemm(cublasHandle_t h) {
  const int m = 5, n = 4, k = 3;
  for (int ta = 0; ta < 2; ++ta)
    for (int tb = 0; tb < 2; ++tb) {
      const int lda = (ta ? k : m) + 2, ldb = (tb ? n : k) + 1, ldc = m + 3;
      const auto A = values(static_cast<size_t>(lda) * (ta ? m : k), 1);
      const auto B = values(static_cast<size_t>(ldb) * (tb ? k : n), 2);
      const auto C = values(static_cast<size_t>(ldc) * n, 3);
      float *dA = to_device(A), *dB = to_device(B), *dC = to_device(C);
      const float alpha = 1.5f, beta = -0.5f;
      const std::string name = std::string("cublasSgemm ") + (ta ? "T" : "N") + (tb ? "T" : "N") + " lda>m alpha beta";
      if (st_ok(cublasSgemm(h, ta ? CUBLAS_OP_T : CUBLAS_OP_N, tb ? CUBLAS_OP_T : CUBLAS_OP_N, m, n, k, &alpha, dA, lda,
                            dB, ldb, &beta, dC, ldc),
                name.c_str())) {
        const auto want = ref_gemm(ta, tb, m, n, k, alpha, A, lda, B, ldb, beta, C, ldc);
        const double d = max_diff(from_device(dC, C.size()), want);
        check(d < 1e-4, name.c_str(), diff_text(d));
      }
      cudaFree(dA);
      cudaFree(dB);
      cudaFree(dC);
    }
}

void check_dgemm_device_scalars(cublasHandle_t h) {
  const int m = 4, n = 3, k = 5;
  std::vector<double> A(m * k), B(k * n), C(m * n);
  for (size_t i = 0; i < A.size(); ++i) A[i] = 0.25 * double(i % 7) - 0.5;
  for (size_t i = 0; i < B.size(); ++i) B[i] = 0.5 * double(i % 5) - 1.0;
  for (size_t i = 0; i < C.size(); ++i) C[i] = double(i);
  double *dA = to_device(A), *dB = to_device(B), *dC = to_device(C);
  double* dS = to_device(std::vector<double>{2.0, 0.5});
  cublasSetPointerMode(h, CUBLAS_POINTER_MODE_DEVICE);
  const cublasStatus_t st = cublasDgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, dS, dA, m, dB, k, dS + 1, dC, m);
  cublasSetPointerMode(h, CUBLAS_POINTER_MODE_HOST);
  if (st_ok(st, "cublasDgemm device pointer mode")) {
    const double d = max_diff(from_device(dC, C.size()), ref_gemm(false, false, m, n, k, 2.0, A, m, B, k, 0.5, C, m));
    check(d < 1e-12, "cublasDgemm device pointer mode", diff_text(d));
  }
  for (void* p : {static_cast<void*>(dA), static_cast<void*>(dB), static_cast<void*>(dC), static_cast<void*>(dS)})
    cudaFree(p);
}

void check_gemm_ex_fp16(cublasHandle_t h) {
  const int m = 8, n = 6, k = 4;
  const auto Af = values(m * k, 4), Bf = values(k * n, 5);
  std::vector<__half> A(Af.size()), B(Bf.size());
  for (size_t i = 0; i < A.size(); ++i) A[i] = __float2half(Af[i]);
  for (size_t i = 0; i < B.size(); ++i) B[i] = __float2half(Bf[i]);
  std::vector<float> C(m * n, 1.0f);
  __half *dA = to_device(A), *dB = to_device(B);
  float* dC = to_device(C);
  const float alpha = 1.0f, beta = 2.0f;
  if (st_ok(cublasGemmEx(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha, dA, CUDA_R_16F, m, dB, CUDA_R_16F, k, &beta, dC,
                         CUDA_R_32F, m, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
            "cublasGemmEx fp16 in, fp32 compute and out")) {
    const double d = max_diff(from_device(dC, C.size()), ref_gemm(false, false, m, n, k, alpha, Af, m, Bf, k, beta, C, m));
    check(d < 1e-3, "cublasGemmEx fp16 in, fp32 compute and out", diff_text(d));
  }
  // Hgemm: half everywhere (values stay exact in half).
  std::vector<__half> Ch(m * n, __float2half(0.5f));
  __half* dCh = to_device(Ch);
  const __half ha = __float2half(1.0f), hb = __float2half(1.0f);
  if (st_ok(cublasHgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &ha, dA, m, dB, k, &hb, dCh, m), "cublasHgemm")) {
    const auto got = from_device(dCh, Ch.size());
    std::vector<float> gotf(got.size()), Cf(Ch.size(), 0.5f);
    for (size_t i = 0; i < got.size(); ++i) gotf[i] = __half2float(got[i]);
    const double d = max_diff(gotf, ref_gemm(false, false, m, n, k, 1.0, Af, m, Bf, k, 1.0, Cf, m));
    check(d < 2e-2, "cublasHgemm", diff_text(d));
  }
  cudaFree(dA);
  cudaFree(dB);
  cudaFree(dC);
  cudaFree(dCh);
}

void check_batched(cublasHandle_t h) {
  const int m = 3, n = 4, k = 2, batch = 3;
  const int lda = m + 1, ldb = k, ldc = m;
  const long long sA = lda * k + 2, sB = ldb * n, sC = ldc * n + 1;
  const auto A = values(static_cast<size_t>(sA) * batch, 6), B = values(static_cast<size_t>(sB) * batch, 7);
  const auto C = values(static_cast<size_t>(sC) * batch, 8);
  float *dA = to_device(A), *dB = to_device(B), *dC = to_device(C);
  const float alpha = 0.5f, beta = 1.0f;
  auto member = [](const std::vector<float>& v, long long stride, int i, size_t len) {
    return std::vector<float>(v.begin() + stride * i, v.begin() + stride * i + static_cast<long long>(len));
  };
  auto check_members = [&](const std::vector<float>& got, const char* name) {
    double d = 0;
    for (int i = 0; i < batch; ++i) {
      const auto want = ref_gemm(false, false, m, n, k, alpha, member(A, sA, i, lda * k), lda, member(B, sB, i, ldb * n),
                                 ldb, beta, member(C, sC, i, ldc * n), ldc);
      d = std::fmax(d, max_diff(member(got, sC, i, ldc * n), want));
    }
    check(d < 1e-4, name, diff_text(d));
  };
  if (st_ok(cublasSgemmStridedBatched(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha, dA, lda, sA, dB, ldb, sB, &beta, dC,
                                      ldc, sC, batch),
            "cublasSgemmStridedBatched"))
    check_members(from_device(dC, C.size()), "cublasSgemmStridedBatched");

  // The same problem through arrays of device pointers (fresh C).
  cudaMemcpy(dC, C.data(), C.size() * sizeof(float), cudaMemcpyHostToDevice);
  std::vector<const float*> pa, pb;
  std::vector<float*> pc;
  for (int i = 0; i < batch; ++i) {
    pa.push_back(dA + sA * i);
    pb.push_back(dB + sB * i);
    pc.push_back(dC + sC * i);
  }
  const float** dpa = to_device(pa);
  const float** dpb = to_device(pb);
  float** dpc = to_device(pc);
  if (st_ok(cublasSgemmBatched(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha, dpa, lda, dpb, ldb, &beta, dpc, ldc, batch),
            "cublasSgemmBatched (pointer arrays)"))
    check_members(from_device(dC, C.size()), "cublasSgemmBatched (pointer arrays)");

  cudaMemcpy(dC, C.data(), C.size() * sizeof(float), cudaMemcpyHostToDevice);
  if (st_ok(cublasGemmBatchedEx(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha, reinterpret_cast<const void* const*>(dpa),
                                CUDA_R_32F, lda, reinterpret_cast<const void* const*>(dpb), CUDA_R_32F, ldb, &beta,
                                reinterpret_cast<void* const*>(dpc), CUDA_R_32F, ldc, batch, CUBLAS_COMPUTE_32F,
                                CUBLAS_GEMM_DEFAULT),
            "cublasGemmBatchedEx"))
    check_members(from_device(dC, C.size()), "cublasGemmBatchedEx");

  cudaMemcpy(dC, C.data(), C.size() * sizeof(float), cudaMemcpyHostToDevice);
  if (st_ok(cublasGemmStridedBatchedEx(h, CUBLAS_OP_N, CUBLAS_OP_N, m, n, k, &alpha, dA, CUDA_R_32F, lda, sA, dB,
                                       CUDA_R_32F, ldb, sB, &beta, dC, CUDA_R_32F, ldc, sC, batch, CUBLAS_COMPUTE_32F,
                                       CUBLAS_GEMM_DEFAULT),
            "cublasGemmStridedBatchedEx"))
    check_members(from_device(dC, C.size()), "cublasGemmStridedBatchedEx");
  for (void* p : {static_cast<void*>(dA), static_cast<void*>(dB), static_cast<void*>(dC), static_cast<void*>(dpa),
                  static_cast<void*>(dpb), static_cast<void*>(dpc)})
    cudaFree(p);
}

void check_level12(cublasHandle_t h) {
  const int n = 7;
  const auto x = values(2 * n, 9), y = values(n, 10);
  float *dx = to_device(x), *dy = to_device(y);
  // dot with incx 2.
  float dot = 0;
  double want = 0;
  for (int i = 0; i < n; ++i) want += double(x[2 * i]) * y[i];
  if (st_ok(cublasSdot(h, n, dx, 2, dy, 1, &dot), "cublasSdot incx=2"))
    check(std::fabs(dot - want) < 1e-5, "cublasSdot incx=2", std::to_string(dot) + " vs " + std::to_string(want));
  // nrm2, asum, iamax.
  float nrm = 0, asum = 0;
  int imax = 0;
  double wn = 0, wa = 0;
  int wi = 1;
  for (int i = 0; i < n; ++i) {
    wn += double(y[i]) * y[i];
    wa += std::fabs(y[i]);
    if (std::fabs(y[i]) > std::fabs(y[wi - 1])) wi = i + 1;
  }
  if (st_ok(cublasSnrm2(h, n, dy, 1, &nrm), "cublasSnrm2"))
    check(std::fabs(nrm - std::sqrt(wn)) < 1e-5, "cublasSnrm2");
  if (st_ok(cublasSasum(h, n, dy, 1, &asum), "cublasSasum")) check(std::fabs(asum - wa) < 1e-5, "cublasSasum");
  if (st_ok(cublasIsamax(h, n, dy, 1, &imax), "cublasIsamax"))
    check(imax == wi, "cublasIsamax", std::to_string(imax) + " vs " + std::to_string(wi));
  // axpy, scal, copy.
  const float a = 2.0f, s = -0.5f;
  cublasSaxpy(h, n, &a, dx, 2, dy, 1);  // y += 2 x(::2)
  cublasSscal(h, n, &s, dy, 1);         // y *= -0.5
  float* dz = to_device(std::vector<float>(n, 0.0f));
  cublasScopy(h, n, dy, 1, dz, 1);
  const auto z = from_device(dz, n);
  double d = 0;
  for (int i = 0; i < n; ++i) d = std::fmax(d, std::fabs(z[i] - (y[i] + 2.0 * x[2 * i]) * -0.5));
  check(d < 1e-5, "cublasSaxpy + cublasSscal + cublasScopy", diff_text(d));
  // Dot with its result in device memory.
  double* dxd = to_device(std::vector<double>{1, 2, 3});
  double* dr = to_device(std::vector<double>{0});
  cublasSetPointerMode(h, CUBLAS_POINTER_MODE_DEVICE);
  const cublasStatus_t st = cublasDdot(h, 3, dxd, 1, dxd, 1, dr);
  cublasSetPointerMode(h, CUBLAS_POINTER_MODE_HOST);
  if (st_ok(st, "cublasDdot device result")) check(from_device(dr, 1)[0] == 14.0, "cublasDdot device result");
  double dn = 0;
  if (st_ok(cublasDnrm2(h, 3, dxd, 1, &dn), "cublasDnrm2")) check(std::fabs(dn - std::sqrt(14.0)) < 1e-12, "cublasDnrm2");
  // gemv, both ways, lda > m.
  const int m = 4, cols = 3, lda = 6;
  const auto A = values(lda * cols, 11);
  const auto v3 = values(cols, 12), v4 = values(m, 13);
  float *dA = to_device(A), *dv3 = to_device(v3), *dv4 = to_device(v4);
  const float alpha = 1.0f, beta = 0.5f;
  if (st_ok(cublasSgemv(h, CUBLAS_OP_N, m, cols, &alpha, dA, lda, dv3, 1, &beta, dv4, 1), "cublasSgemv N")) {
    std::vector<double> w(m);
    for (int i = 0; i < m; ++i) {
      double t = 0;
      for (int j = 0; j < cols; ++j) t += double(A[j * lda + i]) * v3[j];
      w[i] = t + 0.5 * v4[i];
    }
    check(max_diff(from_device(dv4, m), w) < 1e-5, "cublasSgemv N");
  }
  cudaMemcpy(dv4, v4.data(), m * sizeof(float), cudaMemcpyHostToDevice);
  if (st_ok(cublasSgemv(h, CUBLAS_OP_T, m, cols, &alpha, dA, lda, dv4, 1, &beta, dv3, 1), "cublasSgemv T")) {
    std::vector<double> w(cols);
    for (int j = 0; j < cols; ++j) {
      double t = 0;
      for (int i = 0; i < m; ++i) t += double(A[j * lda + i]) * v4[i];
      w[j] = t + 0.5 * v3[j];
    }
    check(max_diff(from_device(dv3, cols), w) < 1e-5, "cublasSgemv T");
  }
  for (void* p : {static_cast<void*>(dx), static_cast<void*>(dy), static_cast<void*>(dz), static_cast<void*>(dxd),
                  static_cast<void*>(dr), static_cast<void*>(dA), static_cast<void*>(dv3), static_cast<void*>(dv4)})
    cudaFree(p);
}

// A well-conditioned n x n matrix (diagonally dominant), column-major, ld n.
std::vector<double> dominant(int n, int seed) {
  std::vector<double> a(static_cast<size_t>(n) * n);
  for (int j = 0; j < n; ++j)
    for (int i = 0; i < n; ++i) a[static_cast<size_t>(j) * n + i] = i == j ? 8.0 + i : double((i * 3 + j * 5 + seed) % 7) - 3.0;
  return a;
}

void check_solvers(cublasHandle_t h) {
  // trsm: left, lower, no transpose, non-unit: solve L X = alpha B.
  const int m = 4, n = 3;
  auto L = dominant(m, 1);
  for (int j = 0; j < m; ++j)
    for (int i = 0; i < j; ++i) L[static_cast<size_t>(j) * m + i] = 99.0;  // the unused triangle must not matter
  std::vector<double> B(static_cast<size_t>(m) * n);
  for (size_t i = 0; i < B.size(); ++i) B[i] = double(i % 5) - 2.0;
  double *dL = to_device(L), *dB = to_device(B);
  const double alpha = 2.0;
  if (st_ok(cublasDtrsm(h, CUBLAS_SIDE_LEFT, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, CUBLAS_DIAG_NON_UNIT, m, n, &alpha, dL,
                        m, dB, m),
            "cublasDtrsm")) {
    const auto X = from_device(dB, B.size());
    double d = 0;  // L X should equal alpha B
    for (int j = 0; j < n; ++j)
      for (int i = 0; i < m; ++i) {
        double s = 0;
        for (int p = 0; p <= i; ++p) s += L[static_cast<size_t>(p) * m + i] * X[static_cast<size_t>(j) * m + p];
        d = std::fmax(d, std::fabs(s - alpha * B[static_cast<size_t>(j) * m + i]));
      }
    check(d < 1e-10, "cublasDtrsm", diff_text(d));
  }
  // trsmBatched (float, one member): same solve.
  std::vector<float> Lf(L.begin(), L.end()), Bf(B.begin(), B.end());
  float *dLf = to_device(Lf), *dBf = to_device(Bf);
  const float* const* dpl = to_device(std::vector<const float*>{dLf});
  float* const* dpb = to_device(std::vector<float*>{dBf});
  const float falpha = 2.0f;
  if (st_ok(cublasStrsmBatched(h, CUBLAS_SIDE_LEFT, CUBLAS_FILL_MODE_LOWER, CUBLAS_OP_N, CUBLAS_DIAG_NON_UNIT, m, n,
                               &falpha, dpl, m, dpb, m, 1),
            "cublasStrsmBatched")) {
    const auto X = from_device(dBf, Bf.size());
    const auto Xd = from_device(dB, B.size());
    check(max_diff(X, std::vector<double>(Xd.begin(), Xd.end())) < 1e-4, "cublasStrsmBatched");
  }
  // getrfBatched + getrsBatched: solve A x = b for two matrices.
  const int N = 5, batch = 2;
  std::vector<double*> mats;
  std::vector<std::vector<double>> As, bs;
  std::vector<double*> rhs;
  for (int i = 0; i < batch; ++i) {
    As.push_back(dominant(N, 10 + i));
    mats.push_back(to_device(As.back()));
    bs.push_back(std::vector<double>(N));
    for (int r = 0; r < N; ++r) bs.back()[r] = double(r + i) - 1.5;
    rhs.push_back(to_device(bs.back()));
  }
  double** dA = to_device(mats);
  double** dR = to_device(rhs);
  int* dpiv = to_device(std::vector<int>(N * batch, 0));
  int* dinfo = to_device(std::vector<int>(batch, -1));
  if (st_ok(cublasDgetrfBatched(h, N, dA, N, dpiv, dinfo, batch), "cublasDgetrfBatched")) {
    const auto info = from_device(dinfo, batch);
    check(info[0] == 0 && info[1] == 0, "cublasDgetrfBatched info");
    int hinfo = -1;
    if (st_ok(cublasDgetrsBatched(h, CUBLAS_OP_N, N, 1, dA, N, dpiv, dR, N, &hinfo, batch), "cublasDgetrsBatched")) {
      double d = 0;
      for (int i = 0; i < batch; ++i) {
        const auto x = from_device(rhs[i], N);
        for (int r = 0; r < N; ++r) {
          double s = 0;
          for (int c = 0; c < N; ++c) s += As[i][static_cast<size_t>(c) * N + r] * x[c];
          d = std::fmax(d, std::fabs(s - bs[i][r]));
        }
      }
      check(hinfo == 0 && d < 1e-10, "cublasDgetrsBatched solves A x = b", diff_text(d));
    }
  }
  int bad_info = 0;
  check(cublasDgetrsBatched(h, CUBLAS_OP_N, -1, 1, dA, N, dpiv, dR, N, &bad_info, batch) ==
                CUBLAS_STATUS_INVALID_VALUE &&
            bad_info < 0,
        "cublasDgetrsBatched n < 0: INVALID_VALUE, info < 0");
  for (auto* p : mats) cudaFree(p);
  for (auto* p : rhs) cudaFree(p);
  for (void* p : {static_cast<void*>(dL), static_cast<void*>(dB), static_cast<void*>(dLf), static_cast<void*>(dBf),
                  const_cast<void*>(static_cast<const void*>(dpl)), const_cast<void*>(static_cast<const void*>(dpb)),
                  static_cast<void*>(dA), static_cast<void*>(dR), static_cast<void*>(dpiv), static_cast<void*>(dinfo)})
    cudaFree(p);
}

void check_transfers() {
  // A 3 x 2 block out of a host matrix with lda 5, into a device matrix with ldb 4, and back into ld 3.
  std::vector<float> host(5 * 2);
  for (size_t i = 0; i < host.size(); ++i) host[i] = float(i);
  float* d = to_device(std::vector<float>(4 * 2, -1.0f));
  std::vector<float> back(3 * 2, 0.0f);
  const bool ok = cublasSetMatrix(3, 2, sizeof(float), host.data(), 5, d, 4) == CUBLAS_STATUS_SUCCESS &&
                  cublasGetMatrix(3, 2, sizeof(float), d, 4, back.data(), 3) == CUBLAS_STATUS_SUCCESS;
  const auto raw = from_device(d, 8);
  check(ok && back == std::vector<float>{0, 1, 2, 5, 6, 7} && raw[3] == -1.0f && raw[7] == -1.0f,
        "cublasSetMatrix/GetMatrix with lda != rows");
  // Vectors with increments, async on a stream.
  cudaStream_t s = nullptr;
  cudaStreamCreate(&s);
  const std::vector<double> v{1, -1, 2, -1, 3, -1};
  double* dv = to_device(std::vector<double>(3, 0.0));
  std::vector<double> out(6, 0.0);
  const bool vok = cublasSetVectorAsync(3, sizeof(double), v.data(), 2, dv, 1, s) == CUBLAS_STATUS_SUCCESS &&
                   cublasGetVectorAsync(3, sizeof(double), dv, 1, out.data(), 2, s) == CUBLAS_STATUS_SUCCESS &&
                   cudaStreamSynchronize(s) == cudaSuccess;
  check(vok && out[0] == 1 && out[2] == 2 && out[4] == 3 && out[1] == 0, "cublasSet/GetVectorAsync with incx 2");
  check(cublasSetVector(3, sizeof(double), v.data(), 0, dv, 1) == CUBLAS_STATUS_INVALID_VALUE,
        "cublasSetVector incx 0: INVALID_VALUE");
  cudaStreamDestroy(s);
  cudaFree(d);
  cudaFree(dv);
}

void check_errors(cublasHandle_t h) {
  const float one = 1.0f;
  float* d = to_device(std::vector<float>(16, 0.0f));
  check(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, -1, 2, 2, &one, d, 2, d, 2, &one, d, 2) == CUBLAS_STATUS_INVALID_VALUE,
        "cublasSgemm m < 0: INVALID_VALUE");
  check(cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 4, 2, 2, &one, d, 2, d, 2, &one, d, 4) == CUBLAS_STATUS_INVALID_VALUE,
        "cublasSgemm lda < m: INVALID_VALUE");
  if (!g_vgpu) {
    skip("destroyed handle, outside pointers, unsupported names", "only defined on vgpu");
    cudaFree(d);
    return;
  }
  // A destroyed handle.
  cublasHandle_t gone = nullptr;
  cublasCreate(&gone);
  cublasDestroy(gone);
  check(cublasSgemm(gone, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 2, &one, d, 2, d, 2, &one, d, 2) ==
            CUBLAS_STATUS_NOT_INITIALIZED,
        "a destroyed handle: NOT_INITIALIZED");
  check(cublasDestroy(gone) == CUBLAS_STATUS_NOT_INITIALIZED, "destroying a handle twice: NOT_INITIALIZED");
  // A name vgpu does not implement.
  using zgemm_t = cublasStatus_t (*)(cublasHandle_t, cublasOperation_t, cublasOperation_t, int, int, int,
                                     const cuDoubleComplex*, const cuDoubleComplex*, int, const cuDoubleComplex*, int,
                                     const cuDoubleComplex*, cuDoubleComplex*, int);
  auto zgemm = reinterpret_cast<zgemm_t>(dlsym(RTLD_DEFAULT, "cublasZgemm_v2"));
  check(zgemm != nullptr && zgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 1, 1, 1, nullptr, nullptr, 1, nullptr, 1, nullptr,
                                  nullptr, 1) == CUBLAS_STATUS_NOT_SUPPORTED,
        "an unimplemented export (cublasZgemm_v2): NOT_SUPPORTED");
  // Last, a deliberately provoked error. vgpu's host refuses these operands
  // before any kernel runs, so the CUDA context is never faulted and the error
  // is reported once, not sticky; natively such a fault would poison every
  // later call of the process, which is why nothing but the final checks comes
  // after it. A pointer outside every allocation: a waited-for call answers
  // with an error...
  float r = 0;
  float* bogus = reinterpret_cast<float*>(0x10);
  check(cublasSdot(h, 4, bogus, 1, d, 1, &r) != CUBLAS_STATUS_SUCCESS, "cublasSdot on a pointer outside any allocation fails");
  // ...a posted one at the next synchronising call, and the session goes on.
  const cublasStatus_t posted =
      cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, 2, 2, 2, &one, bogus, 2, d, 2, &one, d, 2);
  const cudaError_t later = cudaDeviceSynchronize();
  check(posted == CUBLAS_STATUS_SUCCESS && later != cudaSuccess, "posted cublasSgemm on a bad pointer: error at the next sync",
        std::string("cudaDeviceSynchronize: ") + cudaGetErrorName(later));
  const cudaError_t again = cudaDeviceSynchronize();
  const cublasStatus_t dot = cublasSdot(h, 4, d, 1, d, 1, &r);
  check(again == cudaSuccess && dot == CUBLAS_STATUS_SUCCESS, "the session works after the error",
        std::string("cudaDeviceSynchronize: ") + cudaGetErrorName(again) + ", cublasSdot: " + cublasGetStatusName(dot));
  cudaFree(d);
}

int run_checks() {
  cublasHandle_t h = nullptr;
  if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) {
    check(false, "cublasCreate");
    return 1;
  }
  check(true, "cublasCreate");
  check_handle_state(h);
  check_sgemm(h);
  check_dgemm_device_scalars(h);
  check_gemm_ex_fp16(h);
  check_batched(h);
  check_level12(h);
  check_solvers(h);
  check_transfers();
  check_errors(h);
  check(cudaDeviceSynchronize() == cudaSuccess, "no error left at the end");
  check(cublasDestroy(h) == CUBLAS_STATUS_SUCCESS, "cublasDestroy");
  std::printf("SUMMARY pass=%d fail=%d skip=%d\n", g_pass, g_fail, g_skip);
  return g_fail == 0 ? 0 : 1;
}

// Posted SGEMM rate: how many size^3 SGEMM calls per second a program can issue
// (and the GPU finish), the number to compare with native cuBLAS.
int run_bench(double seconds, int size) {
  cublasHandle_t h = nullptr;
  if (cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) return 1;
  const size_t n = static_cast<size_t>(size) * size;
  float *a = to_device(values(n, 1)), *b = to_device(values(n, 2)), *c = to_device(std::vector<float>(n, 0.0f));
  const float one = 1.0f, zero = 0.0f;
  for (int i = 0; i < 100; ++i)  // warm up
    cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, size, size, size, &one, a, size, b, size, &zero, c, size);
  cudaDeviceSynchronize();
  long calls = 0;
  const auto t0 = std::chrono::steady_clock::now();
  double elapsed = 0;
  while (elapsed < seconds) {
    for (int i = 0; i < 1000; ++i)
      if (cublasSgemm(h, CUBLAS_OP_N, CUBLAS_OP_N, size, size, size, &one, a, size, b, size, &zero, c, size) !=
          CUBLAS_STATUS_SUCCESS)
        return 1;
    calls += 1000;
    elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  }
  const cudaError_t st = cudaDeviceSynchronize();
  elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("BENCH sgemm size=%d calls=%ld seconds=%.3f calls_per_s=%.0f (%s) sync=%s\n", size, calls, elapsed,
              double(calls) / elapsed, g_vgpu ? "vgpu" : "native", cudaGetErrorName(st));
  cudaFree(a);
  cudaFree(b);
  cudaFree(c);
  cublasDestroy(h);
  return st == cudaSuccess ? 0 : 1;
}

}  // namespace

int main(int argc, char** argv) {
  g_vgpu = dlsym(RTLD_DEFAULT, "vgpuShimInfo") != nullptr;
  bool expect_vgpu = false, bench = false;
  double seconds = 3;
  int size = 64;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--expect-vgpu") expect_vgpu = true;
    else if (a == "bench") bench = true;
    else if (a == "checks") bench = false;
    else if (a == "--seconds" && i + 1 < argc) seconds = std::atof(argv[++i]);
    else if (a == "--size" && i + 1 < argc) size = std::atoi(argv[++i]);
    else {
      std::fprintf(stderr, "usage: vgpu-cublas-test [--expect-vgpu] [checks | bench [--seconds S] [--size N]]\n");
      return 2;
    }
  }
  if (expect_vgpu && !g_vgpu) {
    check(false, "vgpu shim loaded", "vgpuShimInfo not found: this process runs on NVIDIA's libraries");
    return 1;
  }
  return bench ? run_bench(seconds, size) : run_checks();
}
