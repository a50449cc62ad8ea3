#include "actors/executor/fatbin/lz4.h"

namespace vgpu::fatbin {

namespace {

// Adds the 255-continued extension bytes of a length whose 4-bit field was
// 15. Stops (false) as soon as the length exceeds `limit`, so a hostile run
// of 0xff bytes can neither overflow nor spin long.
bool read_length(const uint8_t* src, size_t src_len, size_t* pos, size_t* len, size_t limit) {
  for (;;) {
    if (*pos >= src_len) return false;
    const uint8_t b = src[(*pos)++];
    *len += b;
    if (*len > limit) return false;
    if (b != 255) return true;
  }
}

}  // namespace

bool lz4_decode_block(const uint8_t* src, size_t src_len, size_t out_len,
                      std::vector<uint8_t>* out) {
  out->clear();
  out->reserve(out_len);
  size_t pos = 0;
  while (pos < src_len) {
    const uint8_t token = src[pos++];
    size_t literals = token >> 4;
    if (literals == 15 && !read_length(src, src_len, &pos, &literals, out_len)) return false;
    if (literals > src_len - pos || literals > out_len - out->size()) return false;
    out->insert(out->end(), src + pos, src + pos + literals);
    pos += literals;
    if (pos == src_len) break;  // the last sequence has literals only
    if (src_len - pos < 2) return false;
    const size_t offset = static_cast<size_t>(src[pos]) | (static_cast<size_t>(src[pos + 1]) << 8);
    pos += 2;
    if (offset == 0 || offset > out->size()) return false;
    size_t match = token & 15;
    if (match == 15 && !read_length(src, src_len, &pos, &match, out_len)) return false;
    match += 4;
    if (match > out_len - out->size()) return false;
    // Byte by byte: a match may overlap the bytes it is producing (offset < length).
    const size_t from = out->size() - offset;
    for (size_t i = 0; i < match; ++i) {
    const uint8_t b = (*out)[from + i];
    out->push_back(b);
  }
  }
  return out->size() == out_len;
}

}  // namespace vgpu::fatbin
