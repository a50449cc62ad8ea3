#include "protocol/region_layout.h"

namespace vgpu::protocol {

namespace {
constexpr uint64_t kPage = 4096;
constexpr uint64_t kMinRing = 4096;
constexpr uint64_t kMinData = 64 * 1024;
constexpr uint64_t kRingsPerChannel = 3;  // request, response, notify
}  // namespace

bool make_layout(uint64_t region_bytes, uint32_t channel_count, uint64_t ring_bytes,
                 region_header* out, std::string* why) {
  if (!is_power_of_two(region_bytes)) {
    *why = "region size must be a power of two (QEMU's ivshmem refuses others)";
    return false;
  }
  if (channel_count == 0 || channel_count > 4096) {
    *why = "channel count must be between 1 and 4096";
    return false;
  }
  if (!is_power_of_two(ring_bytes) || ring_bytes < kMinRing) {
    *why = "ring size must be a power of two of at least 4096 bytes";
    return false;
  }
  region_header h{};
  h.magic = kRegionMagic;
  h.version_major = kVersionMajor;
  h.version_minor = kVersionMinor;
  h.header_bytes = static_cast<uint32_t>(kHeaderBytes);
  h.region_bytes = region_bytes;
  h.channel_count = channel_count;
  h.channel_table_offset = kHeaderBytes;
  h.channel_offset = align_up(kHeaderBytes + uint64_t{channel_count} * sizeof(channel_slot), kPage);
  h.ring_bytes = ring_bytes;
  if (h.channel_offset >= region_bytes) {
    *why = "region too small for its channel table";
    return false;
  }
  const uint64_t per_channel = (region_bytes - h.channel_offset) / channel_count;
  const uint64_t fixed = kPage + kRingsPerChannel * ring_bytes;
  if (per_channel < fixed + kMinData) {
    *why = "region too small: each channel needs its three rings plus at least 64 KiB of data area";
    return false;
  }
  // Data areas are whole pages so that pinned buffers carved from them later
  // can be registered with the driver page by page.
  h.data_bytes = (per_channel - fixed) / kPage * kPage;
  h.channel_stride = fixed + h.data_bytes;
  *out = h;
  return true;
}

bool validate_header(const region_header& h, uint64_t mapped_bytes, std::string* why) {
  if (h.magic != kRegionMagic) {
    *why = "bad magic: this is not a vgpu region";
    return false;
  }
  if (h.version_major != kVersionMajor) {
    *why = "unsupported protocol major version " + std::to_string(h.version_major) +
           " (this side speaks " + std::to_string(kVersionMajor) + ")";
    return false;
  }
  if (h.region_bytes > mapped_bytes) {
    *why = "header claims " + std::to_string(h.region_bytes) + " bytes but only " +
           std::to_string(mapped_bytes) + " are mapped";
    return false;
  }
  // Every size is bounded by region_bytes first, so the sums below cannot wrap.
  const uint64_t r = h.region_bytes;
  if (h.channel_count == 0 || h.channel_count > 4096 || !is_power_of_two(h.ring_bytes) ||
      h.ring_bytes < kMinRing || h.ring_bytes > r / 4 || h.data_bytes > r || h.channel_stride > r ||
      h.channel_offset > r || h.channel_table_offset > r ||
      h.channel_stride < kPage + kRingsPerChannel * h.ring_bytes + h.data_bytes ||
      h.channel_table_offset < sizeof(region_header) || h.channel_table_offset % kCacheLine != 0 ||
      h.channel_offset % kPage != 0 || h.channel_stride % kPage != 0 || h.data_bytes % kPage != 0 ||
      h.channel_table_offset + uint64_t{h.channel_count} * sizeof(channel_slot) > h.channel_offset) {
    *why = "inconsistent channel sizes in header";
    return false;
  }
  // Overflow-safe: the last channel must end inside the region.
  const uint64_t room = h.region_bytes - std::min(h.region_bytes, h.channel_offset);
  if (h.channel_stride == 0 || room / h.channel_stride < h.channel_count) {
    *why = "channels extend past the end of the region";
    return false;
  }
  return true;
}

channel_view channel_at(const region_header& h, uint32_t index) {
  channel_view v{};
  v.ctl_offset = h.channel_offset + uint64_t{index} * h.channel_stride;
  v.request_ring_offset = v.ctl_offset + kPage;
  v.response_ring_offset = v.request_ring_offset + h.ring_bytes;
  v.notify_ring_offset = v.response_ring_offset + h.ring_bytes;
  v.data_offset = v.notify_ring_offset + h.ring_bytes;
  return v;
}

}  // namespace vgpu::protocol
