// A cuBLASLt guest program: built against NVIDIA's headers and libraries, run
// either natively or on vgpu's libcublasLt.so.13 (LD_LIBRARY_PATH). Every
// matmul's result is checked against loops here, and every check prints one
// PASS or FAIL line; the exit code is the number of failures (capped).
//
//   vgpu-cublaslt-test [--expect-vgpu]
//
// --expect-vgpu: fail unless vgpu's libraries are the ones loaded, and add the
// checks of vgpu's own answers (misuse a native library would not survive).
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime_api.h>
#include <dlfcn.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

namespace {

int g_failures = 0;

void check(const std::string& name, bool ok, const std::string& detail = "") {
  if (ok) {
    std::printf("PASS %s\n", name.c_str());
  } else {
    std::printf("FAIL %s%s%s\n", name.c_str(), detail.empty() ? "" : ": ", detail.c_str());
    ++g_failures;
  }
  std::fflush(stdout);
}

std::string status_text(cublasStatus_t st) { return std::to_string(static_cast<int>(st)); }

// --- element storage -----------------------------------------------------------

size_t elem_size(cudaDataType t) { return t == CUDA_R_32F ? 4 : 2; }

void store(std::vector<uint8_t>& buf, size_t i, cudaDataType t, float v) {
  if (t == CUDA_R_32F) {
    std::memcpy(buf.data() + 4 * i, &v, 4);
  } else if (t == CUDA_R_16F) {
    const __half h = __float2half(v);
    std::memcpy(buf.data() + 2 * i, &h, 2);
  } else {
    const __nv_bfloat16 h = __float2bfloat16(v);
    std::memcpy(buf.data() + 2 * i, &h, 2);
  }
}

float load(const std::vector<uint8_t>& buf, size_t i, cudaDataType t) {
  if (t == CUDA_R_32F) {
    float v;
    std::memcpy(&v, buf.data() + 4 * i, 4);
    return v;
  }
  if (t == CUDA_R_16F) {
    __half h;
    std::memcpy(&h, buf.data() + 2 * i, 2);
    return __half2float(h);
  }
  __nv_bfloat16 h;
  std::memcpy(&h, buf.data() + 2 * i, 2);
  return __bfloat162float(h);
}

// A device buffer freed on scope exit.
struct dev_buf {
  void* p = nullptr;
  explicit dev_buf(size_t bytes) {
    if (cudaMalloc(&p, bytes ? bytes : 1) != cudaSuccess) p = nullptr;
  }
  ~dev_buf() {
    if (p) cudaFree(p);
  }
  dev_buf(const dev_buf&) = delete;
  dev_buf& operator=(const dev_buf&) = delete;
};

// One matrix operand in host memory, with its layout.
struct operand {
  uint64_t rows = 0, cols = 0;
  int64_t ld = 0, stride = 0;
  int32_t batch = 1;
  cublasLtOrder_t order = CUBLASLT_ORDER_COL;
  cudaDataType type = CUDA_R_32F;
  std::vector<uint8_t> host;

  void shape(uint64_t r, uint64_t c, int32_t b, cublasLtOrder_t o, cudaDataType t) {
    rows = r;
    cols = c;
    batch = b;
    order = o;
    type = t;
    ld = static_cast<int64_t>(o == CUBLASLT_ORDER_COL ? r : c) + 1;  // padded: ld matters
    const int64_t one = ld * static_cast<int64_t>(o == CUBLASLT_ORDER_COL ? c : r);
    stride = b > 1 ? one + 3 : 0;
    host.assign(static_cast<size_t>(stride * (b - 1) + one) * elem_size(t), 0);
  }
  size_t index(uint64_t i, uint64_t j, int32_t b) const {
    const int64_t ij = order == CUBLASLT_ORDER_COL ? static_cast<int64_t>(i) + static_cast<int64_t>(j) * ld
                                                   : static_cast<int64_t>(i) * ld + static_cast<int64_t>(j);
    return static_cast<size_t>(ij + b * stride);
  }
  float at(uint64_t i, uint64_t j, int32_t b) const { return load(host, index(i, j, b), type); }
  void fill(std::mt19937& rng) {
    // Quarters in [-2, 2]: exact in every type, so the only rounding is the product's.
    std::uniform_int_distribution<int> d(-8, 8);
    for (int32_t b = 0; b < batch; ++b)
      for (uint64_t j = 0; j < cols; ++j)
        for (uint64_t i = 0; i < rows; ++i) store(host, index(i, j, b), type, d(rng) / 4.0f);
  }
  cublasStatus_t make_layout(cublasLtMatrixLayout_t* out) const {
    cublasStatus_t st = cublasLtMatrixLayoutCreate(out, type, rows, cols, ld);
    if (st != CUBLAS_STATUS_SUCCESS) return st;
    if (order != CUBLASLT_ORDER_COL)
      st = cublasLtMatrixLayoutSetAttribute(*out, CUBLASLT_MATRIX_LAYOUT_ORDER, &order, sizeof order);
    if (st == CUBLAS_STATUS_SUCCESS && batch != 1) {
      st = cublasLtMatrixLayoutSetAttribute(*out, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &batch, sizeof batch);
      if (st == CUBLAS_STATUS_SUCCESS)
        st = cublasLtMatrixLayoutSetAttribute(*out, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride,
                                              sizeof stride);
    }
    return st;
  }
};

struct matmul_case {
  std::string name;
  cudaDataType type = CUDA_R_32F;  // A, B, C, D (and bias)
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
  cublasOperation_t ta = CUBLAS_OP_N, tb = CUBLAS_OP_N;
  cublasLtOrder_t order = CUBLASLT_ORDER_COL;
  uint64_t m = 5, n = 4, k = 3;
  int32_t batch = 1;
  cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  float alpha = 1.5f, beta = 0.5f;
  bool in_place = false;      // C and D the same buffer
  bool heuristic = false;     // run the heuristic's first algorithm, with its workspace
  bool device_scalars = false;  // CUBLASLT_POINTER_MODE_DEVICE
  int64_t bias_batch_stride = 0;
  double tolerance = 1e-4;
};

double gelu(double x) { return 0.5 * x * (1.0 + std::tanh(0.7978845608028654 * (x + 0.044715 * x * x * x))); }

// RAII owners of the descriptors one case creates.
struct lt_objects {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, c = nullptr, d = nullptr;
  cublasLtMatmulPreference_t pref = nullptr;
  ~lt_objects() {
    if (desc) cublasLtMatmulDescDestroy(desc);
    for (auto* l : {a, b, c, d})
      if (l) cublasLtMatrixLayoutDestroy(l);
    if (pref) cublasLtMatmulPreferenceDestroy(pref);
  }
};

void run_case(cublasLtHandle_t h, const matmul_case& tc, std::mt19937& rng) {
  operand A, B, C, D;
  A.shape(tc.ta == CUBLAS_OP_N ? tc.m : tc.k, tc.ta == CUBLAS_OP_N ? tc.k : tc.m, tc.batch, tc.order, tc.type);
  B.shape(tc.tb == CUBLAS_OP_N ? tc.k : tc.n, tc.tb == CUBLAS_OP_N ? tc.n : tc.k, tc.batch, tc.order, tc.type);
  C.shape(tc.m, tc.n, tc.batch, tc.order, tc.type);
  D.shape(tc.m, tc.n, tc.batch, tc.order, tc.type);
  A.fill(rng);
  B.fill(rng);
  C.fill(rng);
  const bool has_bias = (tc.epilogue & CUBLASLT_EPILOGUE_BIAS) != 0;
  const size_t bias_elems = tc.m + static_cast<size_t>(tc.bias_batch_stride) * (tc.batch - 1);
  std::vector<uint8_t> bias(bias_elems * elem_size(tc.type));
  std::uniform_int_distribution<int> dist(-8, 8);
  for (size_t i = 0; i < bias_elems; ++i) store(bias, i, tc.type, dist(rng) / 4.0f);

  dev_buf dA(A.host.size()), dB(B.host.size()), dC(C.host.size()), dD(D.host.size()), dBias(bias.size()),
      dScalars(8);
  if (!dA.p || !dB.p || !dC.p || !dD.p || !dBias.p || !dScalars.p) return check(tc.name, false, "cudaMalloc failed");
  cudaMemcpy(dA.p, A.host.data(), A.host.size(), cudaMemcpyHostToDevice);
  cudaMemcpy(dB.p, B.host.data(), B.host.size(), cudaMemcpyHostToDevice);
  cudaMemcpy(dC.p, C.host.data(), C.host.size(), cudaMemcpyHostToDevice);
  cudaMemcpy(dBias.p, bias.data(), bias.size(), cudaMemcpyHostToDevice);
  // D starts as garbage (or as C when C and D are one buffer).
  std::vector<uint8_t> junk(D.host.size(), 0x7b);
  cudaMemcpy(dD.p, tc.in_place ? C.host.data() : junk.data(), D.host.size(), cudaMemcpyHostToDevice);
  const float scalars[2] = {tc.alpha, tc.beta};
  cudaMemcpy(dScalars.p, scalars, sizeof scalars, cudaMemcpyHostToDevice);

  lt_objects o;
  cublasStatus_t st = cublasLtMatmulDescCreate(&o.desc, tc.compute, CUDA_R_32F);
  auto set = [&](cublasLtMatmulDescAttributes_t a, const void* v, size_t n) {
    if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtMatmulDescSetAttribute(o.desc, a, v, n);
  };
  set(CUBLASLT_MATMUL_DESC_TRANSA, &tc.ta, sizeof tc.ta);
  set(CUBLASLT_MATMUL_DESC_TRANSB, &tc.tb, sizeof tc.tb);
  if (tc.epilogue != CUBLASLT_EPILOGUE_DEFAULT) set(CUBLASLT_MATMUL_DESC_EPILOGUE, &tc.epilogue, sizeof tc.epilogue);
  if (has_bias) {
    set(CUBLASLT_MATMUL_DESC_BIAS_POINTER, &dBias.p, sizeof dBias.p);
    if (tc.bias_batch_stride)
      set(CUBLASLT_MATMUL_DESC_BIAS_BATCH_STRIDE, &tc.bias_batch_stride, sizeof tc.bias_batch_stride);
  }
  if (tc.device_scalars) {
    const cublasLtPointerMode_t pm = CUBLASLT_POINTER_MODE_DEVICE;
    set(CUBLASLT_MATMUL_DESC_POINTER_MODE, &pm, sizeof pm);
  }
  if (st == CUBLAS_STATUS_SUCCESS) st = A.make_layout(&o.a);
  if (st == CUBLAS_STATUS_SUCCESS) st = B.make_layout(&o.b);
  if (st == CUBLAS_STATUS_SUCCESS) st = C.make_layout(&o.c);
  if (st == CUBLAS_STATUS_SUCCESS) st = D.make_layout(&o.d);
  if (st != CUBLAS_STATUS_SUCCESS) return check(tc.name, false, "descriptor setup: status " + status_text(st));

  cublasLtMatmulHeuristicResult_t found{};
  const cublasLtMatmulAlgo_t* algo = nullptr;
  size_t ws_bytes = 0;
  const size_t ws_max = 4 << 20;
  dev_buf ws(ws_max);
  if (tc.heuristic) {
    st = cublasLtMatmulPreferenceCreate(&o.pref);
    if (st == CUBLAS_STATUS_SUCCESS)
      st = cublasLtMatmulPreferenceSetAttribute(o.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_max,
                                                sizeof ws_max);
    int returned = 0;
    if (st == CUBLAS_STATUS_SUCCESS)
      st = cublasLtMatmulAlgoGetHeuristic(h, o.desc, o.a, o.b, o.c, o.d, o.pref, 1, &found, &returned);
    check(tc.name + " heuristic", st == CUBLAS_STATUS_SUCCESS && returned == 1 && found.state == CUBLAS_STATUS_SUCCESS &&
                                      found.workspaceSize <= ws_max,
          "status " + status_text(st) + ", returned " + std::to_string(returned));
    if (st != CUBLAS_STATUS_SUCCESS || returned != 1) return;
    algo = &found.algo;
    ws_bytes = found.workspaceSize;
  }
  const float* pa = tc.device_scalars ? static_cast<const float*>(dScalars.p) : &scalars[0];
  const float* pb = tc.device_scalars ? static_cast<const float*>(dScalars.p) + 1 : &scalars[1];
  void* c_ptr = tc.in_place ? dD.p : dC.p;
  st = cublasLtMatmul(h, o.desc, pa, dA.p, o.a, dB.p, o.b, pb, c_ptr, o.c, dD.p, o.d, algo, ws_bytes ? ws.p : nullptr,
                      ws_bytes, nullptr);
  if (st != CUBLAS_STATUS_SUCCESS) return check(tc.name, false, "cublasLtMatmul: status " + status_text(st));
  const cudaError_t sync = cudaStreamSynchronize(nullptr);
  if (sync != cudaSuccess) return check(tc.name, false, std::string("synchronize: ") + cudaGetErrorName(sync));
  cudaMemcpy(D.host.data(), dD.p, D.host.size(), cudaMemcpyDeviceToHost);

  double worst = 0.0;
  std::string where;
  for (int32_t b = 0; b < tc.batch; ++b)
    for (uint64_t j = 0; j < tc.n; ++j)
      for (uint64_t i = 0; i < tc.m; ++i) {
        double acc = 0.0;
        for (uint64_t p = 0; p < tc.k; ++p) {
          const double av = tc.ta == CUBLAS_OP_N ? A.at(i, p, b) : A.at(p, i, b);
          const double bv = tc.tb == CUBLAS_OP_N ? B.at(p, j, b) : B.at(j, p, b);
          acc += av * bv;
        }
        double want = tc.alpha * acc + tc.beta * C.at(i, j, b);
        if (has_bias) want += load(bias, i + static_cast<size_t>(tc.bias_batch_stride) * b, tc.type);
        if (tc.epilogue & CUBLASLT_EPILOGUE_RELU) want = want > 0 ? want : 0;
        if (tc.epilogue & CUBLASLT_EPILOGUE_GELU) want = gelu(want);
        const double got = D.at(i, j, b);
        const double err = std::fabs(got - want) / std::max(1.0, std::fabs(want));
        if (!(err <= worst)) {  // NaN counts as worst
          worst = std::isnan(err) ? INFINITY : err;
          where = "D(" + std::to_string(i) + "," + std::to_string(j) + ") batch " + std::to_string(b) + " = " +
                  std::to_string(got) + ", want " + std::to_string(want);
        }
      }
  check(tc.name, worst <= tc.tolerance, "worst relative error " + std::to_string(worst) + " at " + where);
}

// --- descriptors, versions, errors ------------------------------------------------

void descriptor_checks() {
  cublasLtMatmulDesc_t desc = nullptr;
  cublasStatus_t st = cublasLtMatmulDescCreate(&desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
  check("desc create", st == CUBLAS_STATUS_SUCCESS, status_text(st));
  if (st != CUBLAS_STATUS_SUCCESS) return;
  const int32_t t = CUBLAS_OP_T;
  st = cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &t, sizeof t);
  int32_t back = -1;
  size_t written = 0;
  cublasStatus_t st2 = cublasLtMatmulDescGetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &back, sizeof back, &written);
  check("desc TRANSA set/get", st == CUBLAS_STATUS_SUCCESS && st2 == CUBLAS_STATUS_SUCCESS && back == t && written == 4);
  written = 0;
  st = cublasLtMatmulDescGetAttribute(desc, CUBLASLT_MATMUL_DESC_COMPUTE_TYPE, nullptr, 0, &written);
  check("desc get size query", st == CUBLAS_STATUS_SUCCESS && written == 4, status_text(st));
  const int64_t wrong = 1;
  st = cublasLtMatmulDescSetAttribute(desc, CUBLASLT_MATMUL_DESC_TRANSA, &wrong, sizeof wrong);
  check("desc set wrong size is INVALID_VALUE", st == CUBLAS_STATUS_INVALID_VALUE, status_text(st));
  int32_t scale = -1;
  st = cublasLtMatmulDescGetAttribute(desc, CUBLASLT_MATMUL_DESC_SCALE_TYPE, &scale, sizeof scale, nullptr);
  check("desc SCALE_TYPE from create", st == CUBLAS_STATUS_SUCCESS && scale == CUDA_R_32F);
  uint32_t epi = 0;
  st = cublasLtMatmulDescGetAttribute(desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi, nullptr);
  check("desc EPILOGUE default", st == CUBLAS_STATUS_SUCCESS && epi == CUBLASLT_EPILOGUE_DEFAULT);
  cublasLtMatmulDescDestroy(desc);

  cublasLtMatrixLayout_t l = nullptr;
  st = cublasLtMatrixLayoutCreate(&l, CUDA_R_16F, 7, 9, 8);
  uint64_t rows = 0;
  int64_t ld = 0;
  int32_t batch = 0;
  if (st == CUBLAS_STATUS_SUCCESS) {
    cublasLtMatrixLayoutGetAttribute(l, CUBLASLT_MATRIX_LAYOUT_ROWS, &rows, sizeof rows, nullptr);
    cublasLtMatrixLayoutGetAttribute(l, CUBLASLT_MATRIX_LAYOUT_LD, &ld, sizeof ld, nullptr);
    cublasLtMatrixLayoutGetAttribute(l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT, &batch, sizeof batch, nullptr);
    cublasLtMatrixLayoutDestroy(l);
  }
  check("layout create/get", st == CUBLAS_STATUS_SUCCESS && rows == 7 && ld == 8 && batch == 1);

  // A layout in the program's own storage (cublasLtMatrixLayoutInit).
  cublasLtMatrixLayoutOpaque_t own{};
  st = cublasLtMatrixLayoutInit(&own, CUDA_R_32F, 3, 2, 3);
  uint64_t cols = 0;
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatrixLayoutGetAttribute(&own, CUBLASLT_MATRIX_LAYOUT_COLS, &cols, sizeof cols, nullptr);
  check("layout init in own storage", st == CUBLAS_STATUS_SUCCESS && cols == 2, status_text(st));

  cublasLtMatmulPreference_t pref = nullptr;
  st = cublasLtMatmulPreferenceCreate(&pref);
  const uint64_t ws = 1 << 20;
  uint64_t ws_back = 0;
  if (st == CUBLAS_STATUS_SUCCESS) {
    st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    if (st == CUBLAS_STATUS_SUCCESS)
      st = cublasLtMatmulPreferenceGetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_back,
                                                sizeof ws_back, nullptr);
    cublasLtMatmulPreferenceDestroy(pref);
  }
  check("preference set/get", st == CUBLAS_STATUS_SUCCESS && ws_back == ws, status_text(st));
}

// The heuristic asked for several algorithms: at least one, at most that
// many, each usable; no request at all is INVALID_VALUE.
void heuristic_checks(cublasLtHandle_t h) {
  lt_objects o;
  cublasStatus_t st = cublasLtMatmulDescCreate(&o.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
  if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtMatrixLayoutCreate(&o.a, CUDA_R_16F, 64, 40, 64);
  if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtMatrixLayoutCreate(&o.b, CUDA_R_16F, 40, 48, 40);
  if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtMatrixLayoutCreate(&o.c, CUDA_R_16F, 64, 48, 64);
  if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtMatrixLayoutCreate(&o.d, CUDA_R_16F, 64, 48, 64);
  if (st == CUBLAS_STATUS_SUCCESS) st = cublasLtMatmulPreferenceCreate(&o.pref);
  const uint64_t ws = 1 << 22;
  if (st == CUBLAS_STATUS_SUCCESS)
    st = cublasLtMatmulPreferenceSetAttribute(o.pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
  if (st != CUBLAS_STATUS_SUCCESS) return check("heuristic setup", false, status_text(st));
  cublasLtMatmulHeuristicResult_t r[8];
  int returned = -1;
  st = cublasLtMatmulAlgoGetHeuristic(h, o.desc, o.a, o.b, o.c, o.d, o.pref, 8, r, &returned);
  bool usable = st == CUBLAS_STATUS_SUCCESS && returned >= 1 && returned <= 8;
  for (int i = 0; usable && i < returned; ++i) usable = r[i].state == CUBLAS_STATUS_SUCCESS && r[i].workspaceSize <= ws;
  check("heuristic returns 1..8 usable algorithms for 8 asked", usable,
        "status " + status_text(st) + ", returned " + std::to_string(returned));
  std::printf("heuristic: %d algorithm(s)\n", returned);
  st = cublasLtMatmulAlgoGetHeuristic(h, o.desc, o.a, o.b, o.c, o.d, o.pref, 0, r, &returned);
  check("heuristic asked for 0 is INVALID_VALUE", st == CUBLAS_STATUS_INVALID_VALUE, status_text(st));
}

// Errors that a native library answers the same way.
void error_checks(cublasLtHandle_t h, bool expect_vgpu) {
  lt_objects o;
  cublasLtMatmulDescCreate(&o.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
  cublasLtMatrixLayoutCreate(&o.a, CUDA_R_32F, 4, 3, 4);
  cublasLtMatrixLayoutCreate(&o.b, CUDA_R_32F, 5, 2, 5);  // k = 5 != 3
  cublasLtMatrixLayoutCreate(&o.c, CUDA_R_32F, 4, 2, 4);
  cublasLtMatrixLayoutCreate(&o.d, CUDA_R_32F, 4, 2, 4);
  cublasLtMatmulPreferenceCreate(&o.pref);
  cublasLtMatmulHeuristicResult_t r[2];
  int returned = -1;
  cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(h, o.desc, o.a, o.b, o.c, o.d, o.pref, 2, r, &returned);
  check("heuristic on mismatched shapes fails", st != CUBLAS_STATUS_SUCCESS, status_text(st));
  dev_buf buf(256);
  const float one = 1.0f, zero = 0.0f;
  st = cublasLtMatmul(h, o.desc, &one, buf.p, o.a, buf.p, o.b, &zero, buf.p, o.c, buf.p, o.d, nullptr, nullptr, 0,
                      nullptr);
  // NVIDIA's library may answer INVALID_VALUE or NOT_SUPPORTED here; vgpu's
  // guest checks the shapes itself and says INVALID_VALUE, before posting.
  check("matmul on mismatched shapes fails at once", st != CUBLAS_STATUS_SUCCESS, status_text(st));
  if (expect_vgpu)
    check("vgpu: matmul on mismatched shapes is INVALID_VALUE", st == CUBLAS_STATUS_INVALID_VALUE, status_text(st));
  check("status name", std::strcmp(cublasLtGetStatusName(CUBLAS_STATUS_INVALID_VALUE), "CUBLAS_STATUS_INVALID_VALUE") == 0,
        cublasLtGetStatusName(CUBLAS_STATUS_INVALID_VALUE));
}

// vgpu's own answers to misuse a native library may not survive.
void vgpu_misuse_checks(cublasLtHandle_t h) {
  lt_objects o;
  cublasLtMatmulDescCreate(&o.desc, CUBLAS_COMPUTE_32F, CUDA_R_32F);
  cublasLtMatrixLayoutCreate(&o.a, CUDA_R_32F, 4, 4, 4);
  cublasLtMatrixLayoutCreate(&o.b, CUDA_R_32F, 4, 4, 4);
  cublasLtMatrixLayoutCreate(&o.c, CUDA_R_32F, 4, 4, 4);
  cublasLtMatrixLayoutCreate(&o.d, CUDA_R_32F, 4, 4, 4);
  const float one = 1.0f, zero = 0.0f;
  dev_buf buf(64 * 4);
  cublasLtMatrixLayoutOpaque_t never_initialised{};
  cublasStatus_t st = cublasLtMatmul(h, o.desc, &one, buf.p, &never_initialised, buf.p, o.b, &zero, buf.p, o.c,
                                     buf.p, o.d, nullptr, nullptr, 0, nullptr);
  check("vgpu: uninitialised layout is INVALID_VALUE", st == CUBLAS_STATUS_INVALID_VALUE, status_text(st));
  st = cublasLtMatmul(nullptr, o.desc, &one, buf.p, o.a, buf.p, o.b, &zero, buf.p, o.c, buf.p, o.d, nullptr, nullptr,
                      0, nullptr);
  check("vgpu: NULL handle is NOT_INITIALIZED", st == CUBLAS_STATUS_NOT_INITIALIZED, status_text(st));
  const uint32_t bgrad = CUBLASLT_EPILOGUE_BGRADB;
  cublasLtMatmulDescSetAttribute(o.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &bgrad, sizeof bgrad);
  st = cublasLtMatmul(h, o.desc, &one, buf.p, o.a, buf.p, o.b, &zero, buf.p, o.c, buf.p, o.d, nullptr, nullptr, 0,
                      nullptr);
  check("vgpu: an epilogue not remoted is NOT_SUPPORTED", st == CUBLAS_STATUS_NOT_SUPPORTED, status_text(st));
  const uint32_t def = CUBLASLT_EPILOGUE_DEFAULT;
  cublasLtMatmulDescSetAttribute(o.desc, CUBLASLT_MATMUL_DESC_EPILOGUE, &def, sizeof def);
  // A forged algorithm: the host runs only those its heuristic handed out.
  cublasLtMatmulAlgo_t forged;
  std::memset(&forged, 0x5a, sizeof forged);
  st = cublasLtMatmul(h, o.desc, &one, buf.p, o.a, buf.p, o.b, &zero, buf.p, o.c, buf.p, o.d, &forged, nullptr, 0,
                      nullptr);
  cudaError_t sync = cudaStreamSynchronize(nullptr);
  check("vgpu: a forged algorithm is refused (at the next synchronisation)",
        st != CUBLAS_STATUS_SUCCESS || sync != cudaSuccess, std::string("sync ") + cudaGetErrorName(sync));
  // D beyond the allocation: the host refuses the posted call; the error shows
  // at the next synchronisation, and the session goes on.
  st = cublasLtMatmul(h, o.desc, &one, buf.p, o.a, buf.p, o.b, &zero, buf.p, o.c, static_cast<char*>(buf.p) + 224,
                      o.d, nullptr, nullptr, 0, nullptr);
  sync = cudaStreamSynchronize(nullptr);
  check("vgpu: D outside the allocation is refused", st == CUBLAS_STATUS_SUCCESS && sync != cudaSuccess,
        "status " + status_text(st) + ", sync " + cudaGetErrorName(sync));
  st = cublasLtMatmul(h, o.desc, &one, buf.p, o.a, buf.p, o.b, &zero, buf.p, o.c, buf.p, o.d, nullptr, nullptr, 0,
                      nullptr);
  sync = cudaStreamSynchronize(nullptr);
  check("vgpu: the session works after a refused matmul", st == CUBLAS_STATUS_SUCCESS && sync == cudaSuccess,
        "status " + status_text(st) + ", sync " + cudaGetErrorName(sync));
  cublasLtHandle_t gone = nullptr;
  cublasLtCreate(&gone);
  st = cublasLtDestroy(gone);
  check("vgpu: create/destroy a second handle", st == CUBLAS_STATUS_SUCCESS, status_text(st));
}

// True when the cublasLt loaded lies beside vgpu's libcudart (which exports vgpuShimInfo).
bool vgpu_loaded() {
  void* info = dlsym(RTLD_DEFAULT, "vgpuShimInfo");
  Dl_info rt{}, lt{};
  if (!info || !dladdr(info, &rt) || !dladdr(reinterpret_cast<void*>(&cublasLtMatmul), &lt)) return false;
  const std::string a = rt.dli_fname, b = lt.dli_fname;
  return a.substr(0, a.rfind('/')) == b.substr(0, b.rfind('/'));
}

}  // namespace

int main(int argc, char** argv) {
  const bool expect_vgpu = argc > 1 && std::strcmp(argv[1], "--expect-vgpu") == 0;
  if (expect_vgpu) check("vgpu's libcublasLt.so.13 is loaded", vgpu_loaded());

  size_t version = cublasLtGetVersion();
  int major = -1;
  cublasStatus_t st = cublasLtGetProperty(MAJOR_VERSION, &major);
  check("version", version >= 130000 && st == CUBLAS_STATUS_SUCCESS && major == 13,
        std::to_string(version) + ", major " + std::to_string(major));
  std::printf("cublasLt version %zu\n", version);

  cublasLtHandle_t h = nullptr;
  st = cublasLtCreate(&h);
  check("create", st == CUBLAS_STATUS_SUCCESS && h != nullptr, status_text(st));
  if (st != CUBLAS_STATUS_SUCCESS) return 1;

  descriptor_checks();

  std::mt19937 rng(7);
  std::vector<matmul_case> cases;
  auto add = [&cases](matmul_case c) { cases.push_back(std::move(c)); };
  {
    matmul_case c;
    c.name = "f32 NN col-major";
    add(c);
    c.name = "f32 TN col-major", c.ta = CUBLAS_OP_T, add(c);
    c.name = "f32 NT col-major", c.ta = CUBLAS_OP_N, c.tb = CUBLAS_OP_T, add(c);
    c.name = "f32 TT col-major in place", c.ta = CUBLAS_OP_T, c.in_place = true, add(c);
  }
  {
    matmul_case c;
    c.order = CUBLASLT_ORDER_ROW;
    c.name = "f32 NN row-major", add(c);
    c.name = "f32 TN row-major", c.ta = CUBLAS_OP_T, add(c);
    c.name = "f32 NT row-major batched", c.ta = CUBLAS_OP_N, c.tb = CUBLAS_OP_T, c.batch = 3, add(c);
  }
  {
    matmul_case c;
    c.name = "f32 NN batched strided", c.batch = 4, c.m = 6, c.n = 5, c.k = 7, add(c);
    c.name = "f32 TN batched bias with batch stride", c.ta = CUBLAS_OP_T, c.epilogue = CUBLASLT_EPILOGUE_BIAS,
    c.bias_batch_stride = 6, add(c);
  }
  {
    matmul_case c;
    c.name = "f32 bias (nn.Linear: TN, beta 0)", c.ta = CUBLAS_OP_T, c.m = 8, c.n = 6, c.k = 16, c.beta = 0.0f,
    c.alpha = 1.0f, c.epilogue = CUBLASLT_EPILOGUE_BIAS, add(c);
    c.name = "f32 relu+bias", c.epilogue = CUBLASLT_EPILOGUE_RELU_BIAS, add(c);
    c.name = "f32 relu", c.epilogue = CUBLASLT_EPILOGUE_RELU, add(c);
    c.name = "f32 gelu+bias", c.epilogue = CUBLASLT_EPILOGUE_GELU_BIAS, c.tolerance = 2e-3, add(c);
  }
  {
    matmul_case c;
    c.type = CUDA_R_16F;
    c.tolerance = 1e-2;
    c.name = "f16 NN col-major", add(c);
    c.name = "f16 TN bias (addmm)", c.ta = CUBLAS_OP_T, c.m = 16, c.n = 8, c.k = 32, c.beta = 0.0f, c.alpha = 1.0f,
    c.epilogue = CUBLASLT_EPILOGUE_BIAS, add(c);
    c.name = "f16 TT row-major batched", c.tb = CUBLAS_OP_T, c.order = CUBLASLT_ORDER_ROW, c.batch = 2,
    c.epilogue = CUBLASLT_EPILOGUE_DEFAULT, c.beta = 0.25f, add(c);
    c.name = "f16 with the heuristic's algorithm", c.order = CUBLASLT_ORDER_COL, c.batch = 1, c.heuristic = true,
    add(c);
  }
  {
    matmul_case c;
    c.type = CUDA_R_16BF;
    c.tolerance = 2e-2;
    c.name = "bf16 NN col-major", add(c);
    c.name = "bf16 TN bias", c.ta = CUBLAS_OP_T, c.epilogue = CUBLASLT_EPILOGUE_BIAS, add(c);
  }
  {
    matmul_case c;
    c.name = "f32 with the heuristic's algorithm and workspace", c.m = 64, c.n = 48, c.k = 40, c.heuristic = true,
    add(c);
    c.name = "f32 device pointer mode", c.heuristic = false, c.device_scalars = true, c.m = 5, c.n = 4, c.k = 3, add(c);
  }
  for (const auto& c : cases) run_case(h, c, rng);

  // NVIDIA allows a cublasHandle_t wherever a cublasLtHandle_t is taken, and
  // PyTorch relies on it: its cuBLASLt matmuls get the cuBLAS handle.
  cublasHandle_t blas = nullptr;
  if (cublasCreate(&blas) == CUBLAS_STATUS_SUCCESS) {
    matmul_case c;
    c.name = "f32 bias on a cuBLAS handle (as PyTorch does)", c.ta = CUBLAS_OP_T, c.m = 8, c.n = 6, c.k = 16,
    c.epilogue = CUBLASLT_EPILOGUE_BIAS, c.heuristic = true;
    run_case(reinterpret_cast<cublasLtHandle_t>(blas), c, rng);
    c.name = "f16 on a cuBLAS handle", c.type = CUDA_R_16F, c.tolerance = 1e-2, c.heuristic = false;
    run_case(reinterpret_cast<cublasLtHandle_t>(blas), c, rng);
    cublasDestroy(blas);
  } else {
    check("cublasCreate for the cuBLAS-handle cases", false);
  }

  heuristic_checks(h);
  error_checks(h, expect_vgpu);
  if (expect_vgpu) vgpu_misuse_checks(h);

  st = cublasLtDestroy(h);
  check("destroy", st == CUBLAS_STATUS_SUCCESS, status_text(st));
  std::printf("%s: %d failure(s)\n", g_failures ? "FAILED" : "ALL PASSED", g_failures);
  return g_failures > 100 ? 100 : g_failures;
}
