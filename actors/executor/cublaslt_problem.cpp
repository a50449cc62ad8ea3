#include "actors/executor/cublaslt_problem.h"

#include <cstring>
#include <utility>

namespace vgpu::host::lt {

using protocol::lt::element_bytes;
using protocol::lt::layout_elements;
using protocol::lt::scale_bytes;

namespace {

bool bytes_of(uint64_t elements, uint64_t es, uint64_t* bytes) {
  return !__builtin_mul_overflow(elements, es, bytes);
}

}  // namespace

std::vector<device_range> matmul_ranges(const protocol::lt::matmul_problem& p, const shape& s,
                                        const protocol::scalar16& alpha,
                                        const protocol::scalar16& beta, uint64_t A, uint64_t B,
                                        uint64_t C, uint64_t D, uint64_t workspace,
                                        uint64_t workspace_size) {
  std::vector<device_range> r;
  auto add_layout = [&r](const char* what, uint64_t ptr, const protocol::lt::layout& l) {
    uint64_t elements = 0, bytes = 0;
    // check_problem accepted the layout, so its span is representable.
    layout_elements(l, &elements, nullptr);
    if (!bytes_of(elements, element_bytes(static_cast<int32_t>(l.type)), &bytes)) bytes = ~0ull;
    r.push_back({what, ptr, bytes});
  };
  if (s.k > 0) {
    add_layout("A", A, p.a);
    add_layout("B", B, p.b);
  }
  add_layout("C", C, p.c);
  add_layout("D", D, p.d);
  const auto& d = p.desc;
  if (epilogue_has_bias(d.epilogue)) {
    uint64_t elements = s.m, extra = 0, bytes = 0;
    if (s.batch > 1 && (__builtin_mul_overflow(static_cast<uint64_t>(s.batch - 1),
                                               static_cast<uint64_t>(d.bias_batch_stride), &extra) ||
                        __builtin_add_overflow(elements, extra, &elements)))
      elements = ~0ull;
    if (!bytes_of(elements, protocol::lt::bias_element_bytes(d, p.a, p.d), &bytes)) bytes = ~0ull;
    r.push_back({"bias", d.bias_pointer, bytes});
  }
  // FP8 scale factors and amax: one float each when set.
  const std::pair<const char*, uint64_t> scalars[] = {
      {"A scale", d.a_scale_pointer}, {"B scale", d.b_scale_pointer}, {"C scale", d.c_scale_pointer},
      {"D scale", d.d_scale_pointer}, {"amax D", d.amax_d_pointer}};
  for (const auto& [what, ptr] : scalars)
    if (ptr != 0) r.push_back({what, ptr, 4});
  if (d.pointer_mode == CUBLASLT_POINTER_MODE_DEVICE) {
    uint64_t pa = 0, pb = 0;
    std::memcpy(&pa, alpha.bytes, sizeof pa);
    std::memcpy(&pb, beta.bytes, sizeof pb);
    r.push_back({"alpha", pa, scale_bytes(d.scale_type)});
    r.push_back({"beta", pb, scale_bytes(d.scale_type)});
  }
  if (workspace_size > 0) r.push_back({"workspace", workspace, workspace_size});
  return r;
}

}  // namespace vgpu::host::lt
