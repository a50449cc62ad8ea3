#include "actors/executor/fatbin/zstd_block.h"

#include <zstd.h>

namespace vgpu::fatbin {

bool zstd_decode_frame(const uint8_t* data, size_t size, size_t expected, std::vector<uint8_t>* out) {
  // The frame may say how large it is; it must agree with the fatbin's header.
  const unsigned long long declared = ZSTD_getFrameContentSize(data, size);
  if (declared == ZSTD_CONTENTSIZE_ERROR) return false;
  if (declared != ZSTD_CONTENTSIZE_UNKNOWN && declared != expected) return false;
  out->assign(expected, 0);
  const size_t got = ZSTD_decompress(out->data(), out->size(), data, size);
  return !ZSTD_isError(got) && got == expected;
}

}  // namespace vgpu::fatbin
