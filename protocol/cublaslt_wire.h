// cuBLASLt's descriptors as they cross the wire (protocol/api/cublaslt.api).
//
// The guest keeps matmul descriptors, matrix layouts and preferences itself
// (a program may build them in its own storage with the *Init calls, and
// PyTorch builds a fresh set for every matmul), so creating, setting and
// reading them never costs a round trip. The calls that need the host
// (cublasLtMatmul, the heuristic) carry the whole problem as one of these
// structs, in the request's trailing bytes. The host checks every field
// before it believes it.
#pragma once

#include <cstdint>
#include <type_traits>

namespace vgpu::protocol::lt {

// CUBLASLT_MATRIX_LAYOUT_* attributes (types as cublasLt.h documents them).
struct layout {
  uint32_t type = 0;         // cudaDataType_t
  int32_t order = 0;         // cublasLtOrder_t, default CUBLASLT_ORDER_COL
  uint64_t rows = 0;
  uint64_t cols = 0;
  int64_t ld = 0;            // in elements
  int64_t batch_stride = 0;  // STRIDED_BATCH_OFFSET, in elements
  int64_t plane_offset = 0;
  int32_t batch_count = 1;
  uint32_t batch_mode = 0;   // 0 strided; 1 pointer arrays (not remoted)
};
static_assert(sizeof(layout) == 56 && std::is_trivially_copyable_v<layout>);

// CUBLASLT_MATMUL_DESC_* attributes vgpu carries. Pointers are guest device
// addresses; 0 means "not set".
struct matmul_desc {
  int32_t compute_type = 0;   // cublasComputeType_t
  int32_t scale_type = 0;     // cudaDataType_t of alpha/beta
  int32_t pointer_mode = 0;   // cublasLtPointerMode_t
  int32_t transa = 0;         // cublasOperation_t
  int32_t transb = 0;
  int32_t transc = 0;
  int32_t fill_mode = 2;      // CUBLAS_FILL_MODE_FULL
  uint32_t epilogue = 1;      // CUBLASLT_EPILOGUE_DEFAULT
  int32_t bias_data_type = -1;
  int32_t aux_data_type = -1;
  int32_t sm_count_target = 0;
  int8_t fast_accum = 0;
  uint8_t pad_[3] = {0, 0, 0};
  uint64_t bias_pointer = 0;
  int64_t bias_batch_stride = 0;
  uint64_t aux_pointer = 0;
  int64_t aux_ld = 0;
  int64_t aux_batch_stride = 0;
  int64_t alpha_vector_batch_stride = 0;
  uint64_t a_scale_pointer = 0;
  uint64_t b_scale_pointer = 0;
  uint64_t c_scale_pointer = 0;
  uint64_t d_scale_pointer = 0;
  uint64_t amax_d_pointer = 0;
};
static_assert(sizeof(matmul_desc) == 136 && std::is_trivially_copyable_v<matmul_desc>);

// CUBLASLT_MATMUL_PREF_* attributes.
struct preference {
  uint32_t search_mode = 0;
  uint32_t reduction_scheme_mask = 0x7;  // CUBLASLT_REDUCTION_SCHEME_MASK
  uint64_t max_workspace_bytes = 0;
  uint32_t min_alignment_a = 256;
  uint32_t min_alignment_b = 256;
  uint32_t min_alignment_c = 256;
  uint32_t min_alignment_d = 256;
  float max_waves_count = 0.0f;
  uint32_t pad_ = 0;
  uint64_t impl_mask = ~0ull;  // CUBLASLT_NUMERICAL_IMPL_FLAGS_ALL
};
static_assert(sizeof(preference) == 48 && std::is_trivially_copyable_v<preference>);

// cublasLtMatmulAlgo_t: opaque bytes the host's library filled in.
struct algo {
  uint64_t data[8];
};

// The trailing bytes of vgpuLtMatmulAlgoGetHeuristic.
struct heuristic_problem {
  matmul_desc desc;
  layout a, b, c, d;
  preference pref;
};
static_assert(std::is_trivially_copyable_v<heuristic_problem>);

// The trailing bytes of vgpuLtMatmul. has_algo 0: the host picks one (as
// cublasLtMatmul does for a NULL algo).
struct matmul_problem {
  matmul_desc desc;
  layout a, b, c, d;
  algo chosen;
  uint32_t has_algo = 0;
  uint32_t pad_ = 0;
};
static_assert(std::is_trivially_copyable_v<matmul_problem>);

// One result of the heuristic, in the data area: cublasLtMatmulHeuristicResult_t's
// fields, laid out here so that protocol/ needs no cuBLASLt header.
struct heuristic_result {
  algo chosen;
  uint64_t workspace_size = 0;
  int32_t state = 0;  // cublasStatus_t
  float waves_count = 0.0f;
};
static_assert(sizeof(heuristic_result) == 80 && std::is_trivially_copyable_v<heuristic_result>);

// A handle id with this bit is a cuBLAS handle's id (the program passed its
// cublasHandle_t as a cublasLtHandle_t, which NVIDIA allows); without it, a
// cuBLASLt handle's. The two kinds are issued from separate host tables.
inline constexpr uint64_t kBlasHandleTag = 1ull << 63;

// The most results one heuristic call returns (the data area holds them).
inline constexpr int32_t kMaxHeuristicResults = 64;

}  // namespace vgpu::protocol::lt
