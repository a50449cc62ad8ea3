// The checks of a cuBLASLt problem that the guest and both executors share
// (protocol/cublaslt_checks.h) and the operand ranges the executors check
// against a session's memory (actors/executor/cublaslt_problem.h).
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "actors/executor/cublaslt_problem.h"
#include "protocol/cublaslt_checks.h"

namespace {

namespace wlt = vgpu::protocol::lt;

wlt::layout col(uint32_t type, uint64_t rows, uint64_t cols, int64_t ld) {
  wlt::layout l;
  l.type = type;
  l.rows = rows;
  l.cols = cols;
  l.ld = ld;
  return l;
}

struct problem {
  wlt::matmul_problem p{};
  problem() {
    p.desc.compute_type = CUBLAS_COMPUTE_32F;
    p.desc.scale_type = CUDA_R_32F;
    p.a = col(CUDA_R_32F, 4, 3, 4);  // m 4, k 3
    p.b = col(CUDA_R_32F, 3, 5, 3);  // k 3, n 5
    p.c = col(CUDA_R_32F, 4, 5, 4);
    p.d = col(CUDA_R_32F, 4, 5, 4);
  }
  cublasStatus_t check(wlt::shape* s = nullptr) const {
    wlt::shape local;
    std::string why;
    return wlt::check_problem(p.desc, p.a, p.b, p.c, p.d, s ? s : &local, &why);
  }
};

TEST(CublasLtChecks, AgreeingShapesPass) {
  problem t;
  wlt::shape s;
  ASSERT_EQ(t.check(&s), CUBLAS_STATUS_SUCCESS);
  EXPECT_EQ(s.m, 4u);
  EXPECT_EQ(s.n, 5u);
  EXPECT_EQ(s.k, 3u);
  EXPECT_EQ(s.batch, 1);
}

TEST(CublasLtChecks, TransposeChangesWhichDimensionIsK) {
  problem t;
  t.p.desc.transa = CUBLAS_OP_T;
  EXPECT_EQ(t.check(), CUBLAS_STATUS_INVALID_VALUE);  // A is now 3 x 4: m 3 != 4
  t.p.a = col(CUDA_R_32F, 3, 4, 3);
  EXPECT_EQ(t.check(), CUBLAS_STATUS_SUCCESS);
}

TEST(CublasLtChecks, BadLayoutsAreRefused) {
  problem t;
  t.p.a.ld = 3;  // below rows in column-major
  EXPECT_EQ(t.check(), CUBLAS_STATUS_INVALID_VALUE);
  t = problem();
  t.p.a.order = CUBLASLT_ORDER_ROW;  // row-major: ld >= cols (3), 4 is fine
  t.p.a.ld = 2;
  EXPECT_EQ(t.check(), CUBLAS_STATUS_INVALID_VALUE);
  t = problem();
  t.p.b.order = CUBLASLT_ORDER_COL32;
  EXPECT_EQ(t.check(), CUBLAS_STATUS_NOT_SUPPORTED);
  t = problem();
  t.p.c.batch_count = 2;  // batch counts must agree
  EXPECT_EQ(t.check(), CUBLAS_STATUS_INVALID_VALUE);
  t = problem();
  t.p.d.type = CUDA_R_16F;  // C and D types differ
  EXPECT_EQ(t.check(), CUBLAS_STATUS_INVALID_VALUE);
  t = problem();
  t.p.a.batch_mode = 1;  // pointer arrays are not remoted
  EXPECT_EQ(t.check(), CUBLAS_STATUS_NOT_SUPPORTED);
  t = problem();
  t.p.a.type = 12345;
  EXPECT_EQ(t.check(), CUBLAS_STATUS_NOT_SUPPORTED);
}

TEST(CublasLtChecks, HugeSizesDoNotOverflow) {
  problem t;
  t.p.a = col(CUDA_R_32F, 4, 3, INT64_MAX);
  EXPECT_EQ(t.check(), CUBLAS_STATUS_INVALID_VALUE);
  t = problem();
  t.p.a.batch_count = t.p.b.batch_count = t.p.c.batch_count = t.p.d.batch_count = 2;
  t.p.a.batch_stride = INT64_MAX;
  EXPECT_EQ(t.check(), CUBLAS_STATUS_INVALID_VALUE);
}

TEST(CublasLtChecks, EpiloguesAndPointerModes) {
  problem t;
  t.p.desc.epilogue = CUBLASLT_EPILOGUE_BIAS;
  EXPECT_EQ(t.check(), CUBLAS_STATUS_INVALID_VALUE);  // no bias pointer
  t.p.desc.bias_pointer = 0x1000;
  EXPECT_EQ(t.check(), CUBLAS_STATUS_SUCCESS);
  t.p.desc.epilogue = CUBLASLT_EPILOGUE_BGRADB;
  EXPECT_EQ(t.check(), CUBLAS_STATUS_NOT_SUPPORTED);
  t.p.desc.epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  t.p.desc.pointer_mode = CUBLASLT_POINTER_MODE_DEVICE_VECTOR;
  EXPECT_EQ(t.check(), CUBLAS_STATUS_NOT_SUPPORTED);
  t.p.desc.pointer_mode = CUBLASLT_POINTER_MODE_HOST;
  t.p.desc.transc = CUBLAS_OP_T;
  EXPECT_EQ(t.check(), CUBLAS_STATUS_NOT_SUPPORTED);
}

TEST(CublasLtChecks, BiasElementFollowsCublasLtDefaults) {
  problem t;
  EXPECT_EQ(wlt::bias_element_bytes(t.p.desc, t.p.a, t.p.d), 4u);  // D f32
  t.p.c.type = t.p.d.type = CUDA_R_16F;
  EXPECT_EQ(wlt::bias_element_bytes(t.p.desc, t.p.a, t.p.d), 2u);  // D f16, even with f32 alpha
  t.p.desc.bias_data_type = CUDA_R_32F;
  EXPECT_EQ(wlt::bias_element_bytes(t.p.desc, t.p.a, t.p.d), 4u);  // as set
  t.p.desc.bias_data_type = -1;
  t.p.d.type = CUDA_R_8F_E4M3;  // FP8 output: the widest default
  EXPECT_EQ(wlt::bias_element_bytes(t.p.desc, t.p.a, t.p.d), 4u);
}

TEST(CublasLtChecks, OnlyAnFp8OutputMayDifferFromC) {
  problem t;
  t.p.c.type = CUDA_R_16BF;
  t.p.d.type = CUDA_R_8F_E4M3;
  EXPECT_EQ(t.check(), CUBLAS_STATUS_SUCCESS);
  t.p.d.type = CUDA_R_16F;
  EXPECT_EQ(t.check(), CUBLAS_STATUS_INVALID_VALUE);
}

TEST(CublasLtRanges, EveryOperandWithItsBytes) {
  problem t;
  t.p.desc.epilogue = CUBLASLT_EPILOGUE_RELU_BIAS;
  t.p.desc.bias_pointer = 0x9000;
  t.p.a.batch_count = t.p.b.batch_count = t.p.c.batch_count = t.p.d.batch_count = 3;
  t.p.a.batch_stride = 12;
  t.p.d.batch_stride = 20;
  t.p.desc.bias_batch_stride = 4;
  wlt::shape s;
  ASSERT_EQ(t.check(&s), CUBLAS_STATUS_SUCCESS);
  vgpu::protocol::scalar16 alpha{}, beta{};
  const auto r = vgpu::host::lt::matmul_ranges(t.p, s, alpha, beta, 0x1000, 0x2000, 0x3000, 0x4000, 0x5000, 64);
  auto find = [&r](const std::string& what) -> const vgpu::host::lt::device_range* {
    for (const auto& x : r)
      if (what == x.what) return &x;
    return nullptr;
  };
  ASSERT_NE(find("A"), nullptr);
  EXPECT_EQ(find("A")->bytes, (2 * 12 + 12) * 4u);  // two strides, then one 4 x 3 matrix
  EXPECT_EQ(find("B")->bytes, 15 * 4u);             // stride 0: the members overlap
  EXPECT_EQ(find("D")->ptr, 0x4000u);
  EXPECT_EQ(find("D")->bytes, (2 * 20 + 20) * 4u);
  ASSERT_NE(find("bias"), nullptr);
  EXPECT_EQ(find("bias")->bytes, (4 + 2 * 4) * 4u);
  ASSERT_NE(find("workspace"), nullptr);
  EXPECT_EQ(find("workspace")->bytes, 64u);
  EXPECT_EQ(find("alpha"), nullptr);  // host pointer mode: nothing on the device
}

TEST(CublasLtRanges, DevicePointerModeChecksTheScalars) {
  problem t;
  t.p.desc.pointer_mode = CUBLASLT_POINTER_MODE_DEVICE;
  wlt::shape s;
  ASSERT_EQ(t.check(&s), CUBLAS_STATUS_SUCCESS);
  vgpu::protocol::scalar16 alpha{}, beta{};
  const uint64_t pa = 0x7000, pb = 0x7004;
  std::memcpy(alpha.bytes, &pa, 8);
  std::memcpy(beta.bytes, &pb, 8);
  const auto r = vgpu::host::lt::matmul_ranges(t.p, s, alpha, beta, 1, 2, 3, 4, 0, 0);
  bool saw_alpha = false, saw_beta = false, saw_workspace = false;
  for (const auto& x : r) {
    if (std::string(x.what) == "alpha") saw_alpha = x.ptr == pa && x.bytes == 4;
    if (std::string(x.what) == "beta") saw_beta = x.ptr == pb && x.bytes == 4;
    if (std::string(x.what) == "workspace") saw_workspace = true;
  }
  EXPECT_TRUE(saw_alpha);
  EXPECT_TRUE(saw_beta);
  EXPECT_FALSE(saw_workspace);  // size 0: the pointer is never used
}

}  // namespace
