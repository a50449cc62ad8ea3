#include "actors/executor/fatbin/fatbin.h"

#include <algorithm>
#include <cstring>
#include <set>
#include <string_view>
#include <utility>
#include <vector>

#include "actors/executor/fatbin/cubin.h"
#include "actors/executor/fatbin/lz4.h"
#include "actors/executor/fatbin/ptx.h"
#include "actors/executor/fatbin/zstd_block.h"

namespace vgpu::fatbin {

namespace {

constexpr size_t kHeaderBytes = 16;
constexpr size_t kEntryHeaderMin = 64;
constexpr uint16_t kKindPtx = 1;
constexpr uint16_t kKindElf = 2;
constexpr uint64_t kFlagLz4 = 0x2000;
constexpr uint64_t kFlagZstd = 0x8000;
// The device the reference executor pretends to be (sm_90): PTX for it or
// below is what a real driver would JIT, and its cubin is what a real driver
// would load, so they are preferred. (A cubin for another arch may place
// parameters aligned above 16 bytes elsewhere: its parameter bank starts at
// another address.)
constexpr uint32_t kDeviceArch = 90;
// LZ4 cannot expand a block more than 255 times; a larger claim is a lie
// that would only make the host allocate.
constexpr uint64_t kLz4MaxRatio = 255;
constexpr uint64_t kMaxPayloadBytes = 1ull << 30;

constexpr const char* kRebuildCompressed =
    "the reference executor reads uncompressed, LZ4 and zstd entries only: build the guest "
    "program with `nvcc --no-compress` (or -compress-mode=none)";

// Host and fatbin are both little-endian (x86-64, aarch64); memcpy because
// guest bytes carry no alignment promise.
template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

struct entry {
  size_t at = 0;  // offset of the entry header in the image, for messages
  uint16_t kind = 0;
  uint32_t arch = 0;
  uint64_t flags = 0;
  uint32_t compressed_size = 0;
  uint64_t uncompressed_size = 0;
  const uint8_t* payload = nullptr;
  uint64_t payload_size = 0;

  bool plain() const {
    return (flags & (kFlagLz4 | kFlagZstd)) == 0 && compressed_size == 0 &&
           uncompressed_size == 0;
  }
  bool lz4() const { return (flags & kFlagLz4) != 0 && (flags & kFlagZstd) == 0; }
  // nvcc 13's default compression (NVIDIA's CUDA 13 libraries and PyTorch's
  // wheels ship their cubins so).
  bool zstd() const { return (flags & kFlagZstd) != 0 && (flags & kFlagLz4) == 0; }
  bool readable() const { return plain() || lz4() || zstd(); }
  // The highest arch <= kDeviceArch first, then the lowest above it.
  uint64_t by_arch() const {
    return arch <= kDeviceArch ? kDeviceArch - arch : uint64_t{1} + arch;
  }
  // PTX, lower is better: plain before LZ4, then by arch.
  uint64_t rank() const { return (uint64_t{plain() ? 0u : 1u} << 33) + by_arch(); }
  // Cubins, by arch first (the layout of over-aligned parameters depends on
  // it), then plain before LZ4.
  uint64_t cubin_rank() const { return (by_arch() << 1) + (plain() ? 0 : 1); }
};

std::string hex(uint64_t v) {
  static const char digits[] = "0123456789abcdef";
  std::string s;
  do {
    s.insert(s.begin(), digits[v & 15]);
    v >>= 4;
  } while (v != 0);
  return "0x" + s;
}

bool read_entries(const uint8_t* data, size_t size, std::vector<entry>* out, std::string* why) {
  if (data == nullptr || size < kHeaderBytes) {
    *why = "is " + std::to_string(size) + " bytes, shorter than a fatbin header";
    return false;
  }
  const uint32_t magic = load<uint32_t>(data);
  const uint16_t version = load<uint16_t>(data + 4);
  const uint16_t header_size = load<uint16_t>(data + 6);
  const uint64_t fat_size = load<uint64_t>(data + 8);
  if (magic != kFatbinMagic) {
    *why = "does not start with the fatbin magic " + hex(kFatbinMagic) + " (found " + hex(magic) +
           ")";
    return false;
  }
  if (version != 1) {
    *why = "has fatbin version " + std::to_string(version) + "; only version 1 is known";
    return false;
  }
  if (header_size < kHeaderBytes || header_size > size || fat_size > size - header_size) {
    *why = "is truncated or malformed: its header claims " + std::to_string(header_size) + " + " +
           std::to_string(fat_size) + " bytes, " + std::to_string(size) + " arrived";
    return false;
  }
  const size_t end = header_size + static_cast<size_t>(fat_size);
  for (size_t pos = header_size; pos < end;) {
    const uint8_t* h = data + pos;
    const uint64_t entry_header = end - pos >= kEntryHeaderMin ? load<uint32_t>(h + 4) : 0;
    if (entry_header < kEntryHeaderMin || entry_header > end - pos) {
      *why = "has a truncated or malformed entry header at offset " + std::to_string(pos);
      return false;
    }
    entry e;
    e.at = pos;
    e.kind = load<uint16_t>(h);
    e.payload_size = load<uint64_t>(h + 8);
    e.compressed_size = load<uint32_t>(h + 0x10);
    e.arch = load<uint32_t>(h + 0x1c);
    e.flags = load<uint64_t>(h + 0x28);
    e.uncompressed_size = load<uint64_t>(h + 0x38);
    if (e.payload_size > end - pos - entry_header) {
      *why = "has an entry at offset " + std::to_string(pos) + " whose " +
             std::to_string(e.payload_size) + "-byte payload runs past the end";
      return false;
    }
    e.payload = h + entry_header;
    out->push_back(e);
    pos += entry_header + static_cast<size_t>(e.payload_size);
  }
  return true;
}

// The bytes of a plain or LZ4 entry (decoded into `scratch`).
bool payload_of(const entry& e, std::vector<uint8_t>* scratch, const uint8_t** data, size_t* size,
                std::string* why) {
  const uint8_t* p = e.payload;
  uint64_t n = e.payload_size;
  if (e.zstd()) {
    if (e.compressed_size == 0 || e.compressed_size > e.payload_size || e.uncompressed_size == 0 ||
        e.uncompressed_size > kMaxPayloadBytes) {
      *why = "has implausible zstd sizes";
      return false;
    }
    if (!zstd_decode_frame(p, e.compressed_size, static_cast<size_t>(e.uncompressed_size), scratch)) {
      *why = "is not a valid zstd frame of the size its header gives";
      return false;
    }
    p = scratch->data();
    n = scratch->size();
  } else if (!e.plain()) {
    const uint64_t limit = std::min(kMaxPayloadBytes, uint64_t{e.compressed_size} * kLz4MaxRatio);
    if (e.compressed_size == 0 || e.compressed_size > e.payload_size ||
        e.uncompressed_size == 0 || e.uncompressed_size > limit) {
      *why = "has implausible LZ4 sizes";
      return false;
    }
    if (!lz4_decode_block(p, e.compressed_size, static_cast<size_t>(e.uncompressed_size),
                          scratch)) {
      *why = "is not a valid LZ4 block";
      return false;
    }
    p = scratch->data();
    n = scratch->size();
  }
  *data = p;
  *size = static_cast<size_t>(n);
  return true;
}

// The PTX text of a plain or LZ4 entry, up to its terminating NUL.
bool ptx_text(const entry& e, std::vector<uint8_t>* scratch, std::string_view* text,
              std::string* why) {
  const uint8_t* p = nullptr;
  size_t n = 0;
  if (!payload_of(e, scratch, &p, &n, why)) return false;
  const void* nul = std::memchr(p, 0, n);
  if (nul != nullptr) n = static_cast<size_t>(static_cast<const uint8_t*>(nul) - p);
  *text = std::string_view(reinterpret_cast<const char*>(p), n);
  return true;
}

}  // namespace

bool parse_fatbin(const uint8_t* data, size_t size, module_info* out, std::string* why) {
  std::string reason;
  std::vector<entry> entries;
  if (!read_entries(data, size, &entries, &reason)) {
    if (why) *why = "the image " + reason;
    return false;
  }
  // PTX when there is some (the behaviour since the start), else a cubin.
  const entry* ptx = nullptr;
  const entry* cubin = nullptr;
  bool compressed_ptx = false, compressed_cubin = false;
  for (const entry& e : entries) {
    if (e.kind == kKindPtx) {
      if (!e.readable()) compressed_ptx = true;
      else if (ptx == nullptr || e.rank() < ptx->rank()) ptx = &e;
    } else if (e.kind == kKindElf) {
      if (!e.readable()) compressed_cubin = true;
      else if (cubin == nullptr || e.cubin_rank() < cubin->cubin_rank()) cubin = &e;
    }
  }
  std::vector<uint8_t> scratch;
  if (ptx != nullptr) {
    std::string_view text;
    const std::string source = "compute_" + std::to_string(ptx->arch) + " PTX";
    if (!ptx_text(*ptx, &scratch, &text, &reason) || !parse_ptx(text, out, &reason)) {
      if (why) *why = "the " + source + " entry at offset " + std::to_string(ptx->at) + ": " + reason;
      return false;
    }
    out->source = source;
    return true;
  }
  if (cubin != nullptr) {
    const uint8_t* bytes = nullptr;
    size_t n = 0;
    const std::string source = "sm_" + std::to_string(cubin->arch) + " cubin";
    if (!payload_of(*cubin, &scratch, &bytes, &n, &reason) ||
        !parse_cubin(bytes, n, out, &reason)) {
      if (why) {
        *why = "the " + source + " entry at offset " + std::to_string(cubin->at) + ": " + reason;
        // The PTX that would have been read instead, had it been readable.
        if (compressed_ptx) *why += std::string("; its PTX is compressed in an unknown way: ") + kRebuildCompressed;
      }
      return false;
    }
    out->source = source;
    return true;
  }
  if (why) {
    if (compressed_ptx || compressed_cubin) {
      *why = std::string("the image's ") +
             (compressed_ptx && compressed_cubin ? "PTX and cubins are compressed in an unknown way"
              : compressed_ptx ? "PTX is compressed in an unknown way"
                               : "cubins are compressed in an unknown way") +
             "; " + kRebuildCompressed;
    } else {
      // Other kinds exist (8: NVVM IR for link-time optimisation, cuFFT's
      // callbacks); saying which helps whoever reads the log.
      std::set<uint16_t> seen;
      std::string kinds;
      for (const entry& e : entries) {
        if (seen.insert(e.kind).second) kinds += (kinds.empty() ? "" : ", ") + std::to_string(e.kind);
      }
      *why = "the image has neither PTX nor a cubin (" + std::to_string(entries.size()) +
             " entries" + (kinds.empty() ? "" : ", of kind " + kinds) + ")";
    }
  }
  return false;
}

}  // namespace vgpu::fatbin
