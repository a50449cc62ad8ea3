// The shared region's layout: what make_layout builds and what validate_header
// accepts. The guest trusts nothing but a header that passed validate_header,
// so every way a header can lie about sizes must be refused.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <limits>
#include <string>
#include <utility>
#include <vector>

#include "protocol/region_layout.h"

namespace vgpu::protocol {
namespace {

constexpr uint64_t KiB = 1024;
constexpr uint64_t MiB = 1024 * KiB;

region_header layout_or_die(uint64_t region, uint32_t channels, uint64_t ring) {
  region_header h{};
  std::string why;
  EXPECT_TRUE(make_layout(region, channels, ring, &h, &why))
      << region << " bytes, " << channels << " channels, ring " << ring << ": " << why;
  return h;
}

void expect_layout_refused(uint64_t region, uint32_t channels, uint64_t ring) {
  region_header h{};
  h.magic = 0xdeadbeef;  // must stay untouched on refusal
  std::string why;
  EXPECT_FALSE(make_layout(region, channels, ring, &h, &why))
      << region << " bytes, " << channels << " channels, ring " << ring << " was accepted";
  EXPECT_FALSE(why.empty()) << "a refusal must say why";
  EXPECT_EQ(h.magic, 0xdeadbeefu) << "a refused layout must not write the header";
}

TEST(RegionLayout, RefusesRegionSizeThatIsNotAPowerOfTwo) {
  expect_layout_refused(0, 1, 64 * KiB);
  expect_layout_refused(3 * MiB, 1, 64 * KiB);
  expect_layout_refused(64 * MiB + 4096, 1, 64 * KiB);
  expect_layout_refused(64 * MiB - 1, 1, 64 * KiB);
}

TEST(RegionLayout, RefusesZeroChannels) { expect_layout_refused(64 * MiB, 0, 64 * KiB); }

TEST(RegionLayout, RefusesRegionTooSmall) {
  // Rings alone do not fit.
  expect_layout_refused(64 * KiB, 1, 64 * KiB);
  // Rings fit but leave no 64 KiB data area.
  expect_layout_refused(128 * KiB, 1, 32 * KiB);
  // The channel table alone does not fit.
  expect_layout_refused(8 * KiB, 4096, 4 * KiB);
  // Enough for one channel, not for sixteen.
  expect_layout_refused(1 * MiB, 16, 64 * KiB);
}

TEST(RegionLayout, RefusesBadRingSize) {
  expect_layout_refused(64 * MiB, 1, 0);
  expect_layout_refused(64 * MiB, 1, 3000);
  expect_layout_refused(64 * MiB, 1, 2048);  // power of two, below the minimum
  expect_layout_refused(64 * MiB, 1, 64 * KiB + 8);
  expect_layout_refused(64 * MiB, 1, (64 * KiB) * 3);
}

// Every piece of every channel inside the region, nothing overlapping anything.
void expect_sound_layout(const region_header& h) {
  std::string why;
  EXPECT_TRUE(validate_header(h, h.region_bytes, &why)) << why;
  EXPECT_EQ(h.magic, kRegionMagic);
  EXPECT_EQ(h.version_major, kVersionMajor);
  EXPECT_EQ(h.version_minor, kVersionMinor);
  EXPECT_GE(h.data_bytes, 64 * KiB);
  EXPECT_EQ(h.data_bytes % 4096, 0u) << "data areas are whole pages";

  struct piece {
    uint64_t begin, end;
    std::string what;
  };
  std::vector<piece> pieces;
  pieces.push_back({0, kHeaderBytes, "header"});
  pieces.push_back({h.channel_table_offset,
                    h.channel_table_offset + uint64_t{h.channel_count} * sizeof(channel_slot),
                    "channel table"});
  for (uint32_t c = 0; c < h.channel_count; ++c) {
    const channel_view v = channel_at(h, c);
    const std::string n = "channel " + std::to_string(c);
    EXPECT_EQ(v.ctl_offset % 4096, 0u) << n;
    EXPECT_EQ(v.request_ring_offset % kCacheLine, 0u) << n;
    EXPECT_EQ(v.response_ring_offset % kCacheLine, 0u) << n;
    EXPECT_EQ(v.data_offset % 4096, 0u) << n;
    pieces.push_back({v.ctl_offset, v.ctl_offset + sizeof(channel_ctl), n + " ctl"});
    pieces.push_back({v.request_ring_offset, v.request_ring_offset + h.ring_bytes, n + " request ring"});
    pieces.push_back({v.response_ring_offset, v.response_ring_offset + h.ring_bytes, n + " response ring"});
    EXPECT_EQ(v.notify_ring_offset % kCacheLine, 0u) << n;
    pieces.push_back({v.notify_ring_offset, v.notify_ring_offset + h.ring_bytes, n + " notify ring"});
    pieces.push_back({v.data_offset, v.data_offset + h.data_bytes, n + " data"});
  }
  for (const piece& p : pieces) {
    EXPECT_LT(p.begin, p.end) << p.what;
    EXPECT_LE(p.end, h.region_bytes) << p.what << " runs past the region";
  }
  std::sort(pieces.begin(), pieces.end(),
            [](const piece& a, const piece& b) { return a.begin < b.begin; });
  for (size_t i = 1; i < pieces.size(); ++i) {
    EXPECT_LE(pieces[i - 1].end, pieces[i].begin)
        << pieces[i - 1].what << " overlaps " << pieces[i].what;
  }
}

TEST(RegionLayout, Accepts64MiBOneChannel) {
  const region_header h = layout_or_die(64 * MiB, 1, 256 * KiB);
  EXPECT_EQ(h.region_bytes, 64 * MiB);
  EXPECT_EQ(h.channel_count, 1u);
  EXPECT_EQ(h.ring_bytes, 256 * KiB);
  // One channel gets nearly the whole region as data area.
  EXPECT_GT(h.data_bytes, 60 * MiB);
  expect_sound_layout(h);
}

TEST(RegionLayout, Accepts256MiBSixteenChannels) {
  const region_header h = layout_or_die(256 * MiB, 16, 1 * MiB);
  EXPECT_EQ(h.channel_count, 16u);
  EXPECT_GT(h.data_bytes, 8 * MiB);
  expect_sound_layout(h);
}

TEST(RegionLayout, ManyShapesAreSound) {
  for (uint64_t region : {1 * MiB, 16 * MiB, 64 * MiB, 1024 * MiB}) {
    for (uint32_t channels : {1u, 2u, 3u, 7u, 16u, 64u}) {
      for (uint64_t ring : {4 * KiB, 64 * KiB, 1 * MiB}) {
        region_header h{};
        std::string why;
        if (!make_layout(region, channels, ring, &h, &why)) continue;  // too small is fine
        SCOPED_TRACE(std::to_string(region) + "/" + std::to_string(channels) + "/" +
                     std::to_string(ring));
        expect_sound_layout(h);
      }
    }
  }
}

// validate_header ------------------------------------------------------------------

class ValidateHeader : public ::testing::Test {
 protected:
  void SetUp() override { h_ = layout_or_die(256 * MiB, 16, 1 * MiB); }

  void expect_refused(const region_header& h, uint64_t mapped, const char* what) {
    std::string why;
    EXPECT_FALSE(validate_header(h, mapped, &why)) << what << " was accepted";
    EXPECT_FALSE(why.empty()) << what << ": a refusal must say why";
  }
  void expect_accepted(const region_header& h, uint64_t mapped, const char* what) {
    std::string why;
    EXPECT_TRUE(validate_header(h, mapped, &why)) << what << ": " << why;
  }

  region_header h_{};
};

TEST_F(ValidateHeader, AcceptsWhatMakeLayoutBuilt) {
  expect_accepted(h_, h_.region_bytes, "fresh header");
  expect_accepted(h_, h_.region_bytes * 2, "fresh header, larger mapping");
}

TEST_F(ValidateHeader, RefusesBadMagic) {
  region_header h = h_;
  h.magic = 0;
  expect_refused(h, h.region_bytes, "zero magic");
  h.magic = kRegionMagic ^ 1;
  expect_refused(h, h.region_bytes, "magic with one bit flipped");
}

TEST_F(ValidateHeader, RefusesOtherMajorVersion) {
  region_header h = h_;
  h.version_major = kVersionMajor + 1;
  expect_refused(h, h.region_bytes, "newer major");
  h.version_major = kVersionMajor - 1;
  expect_refused(h, h.region_bytes, "older major");
  h.version_major = 0xffff;
  expect_refused(h, h.region_bytes, "major 0xffff");
}

TEST_F(ValidateHeader, AcceptsOtherMinorVersions) {
  region_header h = h_;
  // Older minors (written by an older host): accepted.
  for (uint32_t m = 0; m <= kVersionMinor; ++m) {
    h.version_minor = static_cast<uint16_t>(m);
    expect_accepted(h, h.region_bytes, "older or equal minor");
  }
  // A newer minor written by an upgraded mediator: an unchanged guest shim keeps working.
  h.version_minor = kVersionMinor + 1;
  expect_accepted(h, h.region_bytes, "newer minor");
}

TEST_F(ValidateHeader, RefusesRegionLargerThanMapped) {
  expect_refused(h_, h_.region_bytes - 1, "region one byte larger than the mapping");
  expect_refused(h_, h_.region_bytes / 2, "region twice the mapping");
  expect_refused(h_, 0, "nothing mapped");
}

TEST_F(ValidateHeader, RefusesChannelCountThatOverflows) {
  region_header h = h_;
  h.channel_count = std::numeric_limits<uint32_t>::max();
  expect_refused(h, h.region_bytes, "channel_count 2^32-1");
  h.channel_count = 0;
  expect_refused(h, h.region_bytes, "channel_count 0");
  // One more channel than fits behind channel_offset with this stride.
  h = h_;
  h.channel_count = h_.channel_count + 1;
  expect_refused(h, h.region_bytes, "one channel too many");
}

TEST_F(ValidateHeader, RefusesStrideThatOverflowsOrRunsPastTheEnd) {
  region_header h = h_;
  h.channel_stride = std::numeric_limits<uint64_t>::max() / 2 + 1;  // count*stride wraps
  expect_refused(h, h.region_bytes, "stride that wraps when multiplied");
  h.channel_stride = std::numeric_limits<uint64_t>::max();
  expect_refused(h, h.region_bytes, "stride 2^64-1");
  h.channel_stride = h_.channel_stride + 4096;  // the last channel ends past region_bytes
  expect_refused(h, h.region_bytes, "stride one page too large");
  h.channel_stride = 0;
  expect_refused(h, h.region_bytes, "stride 0");
  h = h_;
  h.channel_stride = h_.channel_stride - 4096;  // shorter than ctl + rings + data
  expect_refused(h, h.region_bytes, "stride shorter than the channel's pieces");
}

TEST_F(ValidateHeader, RefusesOffsetsPastTheEnd) {
  region_header h = h_;
  h.channel_offset = h.region_bytes;
  expect_refused(h, h.region_bytes, "channels start at the end");
  h.channel_offset = std::numeric_limits<uint64_t>::max() - 4095;
  expect_refused(h, h.region_bytes, "channel_offset near 2^64");
  h = h_;
  // Shift the channels so that the last one ends exactly one byte past the region.
  const uint64_t end_of_last = h_.channel_offset + uint64_t{h_.channel_count} * h_.channel_stride;
  ASSERT_LE(end_of_last, h_.region_bytes);
  h.channel_offset = h_.channel_offset + (h_.region_bytes - end_of_last) + 1;
  expect_refused(h, h.region_bytes, "last channel ends one byte past the region");
  h.channel_offset = h_.channel_offset + (h_.region_bytes - end_of_last);
  expect_accepted(h, h.region_bytes, "last channel ends exactly at the region's end");
  h = h_;
  h.channel_table_offset = 0;  // the table would overlap the header
  expect_refused(h, h.region_bytes, "channel table inside the header");
  h.channel_table_offset = h_.channel_offset;  // the table would overlap channel 0
  expect_refused(h, h.region_bytes, "channel table inside channel 0");
}

TEST_F(ValidateHeader, RefusesBadRingOrDataSize) {
  region_header h = h_;
  h.ring_bytes = h_.ring_bytes + 8;
  expect_refused(h, h.region_bytes, "ring size not a power of two");
  h.ring_bytes = 0;
  expect_refused(h, h.region_bytes, "ring size 0");
  h.ring_bytes = h_.ring_bytes * 2;  // rings no longer fit the stride
  expect_refused(h, h.region_bytes, "ring size larger than the stride allows");
  h.ring_bytes = uint64_t{1} << 63;  // 2 * ring_bytes wraps to 0
  expect_refused(h, h.region_bytes, "ring size 2^63");
  h = h_;
  h.data_bytes = h_.data_bytes + 4096;
  expect_refused(h, h.region_bytes, "data area larger than the stride allows");
  h.data_bytes = std::numeric_limits<uint64_t>::max() - 4096;
  expect_refused(h, h.region_bytes, "data area near 2^64");
}

// The ring indices are std::atomic in shared memory: a channel at an offset that
// is not a multiple of the cache line would make them misaligned (not atomic).
TEST_F(ValidateHeader, RefusesMisalignedChannels) {
  region_header h = h_;
  h.channel_offset = h_.channel_offset + 8;
  expect_refused(h, h.region_bytes, "channel_offset not cache-line aligned");
  h = h_;
  h.channel_stride = h_.channel_stride + 8;
  h.data_bytes = h_.data_bytes;
  expect_refused(h, h.region_bytes, "channel_stride not cache-line aligned");
}

}  // namespace
}  // namespace vgpu::protocol
