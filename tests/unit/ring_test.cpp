// The SPSC byte ring over a plain heap buffer: round trips, full and empty,
// wrap-around with pad records, and the consumer's and producer's refusal to
// follow indices or frames that a hostile peer wrote.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <memory>
#include <random>
#include <vector>

#include "protocol/message.h"
#include "protocol/region_layout.h"
#include "protocol/ring.h"

namespace vgpu::protocol {
namespace {

// One ring's shared state (indices + buffer) as it would sit in the region, and a
// producer and a consumer each with their own view of it, as two processes have.
struct shared_ring {
  explicit shared_ring(uint64_t cap, uint64_t head = 0, uint64_t tail = 0)
      : idx(new ring_indices()), buf(cap, 0xEE), capacity(cap) {
    idx->head.store(head);
    idx->tail.store(tail);
    idx->consumer_sleeping.store(0);
  }
  ring producer() { return ring(idx.get(), buf.data(), capacity); }
  ring consumer() { return ring(idx.get(), buf.data(), capacity); }
  void put_frame(uint64_t pos, uint32_t length, uint32_t kind) {
    record_frame f{length, kind};
    std::memcpy(buf.data() + pos, &f, sizeof f);
  }

  std::unique_ptr<ring_indices> idx;
  std::vector<uint8_t> buf;
  uint64_t capacity;
};

std::vector<uint8_t> pattern(uint32_t n, uint32_t seed) {
  std::vector<uint8_t> v(n);
  std::mt19937 rng(seed);
  for (auto& b : v) b = static_cast<uint8_t>(rng() | 1);  // never zero
  return v;
}

TEST(Ring, RecordBytesIsFramePlusBodyPaddedToEight) {
  EXPECT_EQ(record_bytes(0), 8u);
  EXPECT_EQ(record_bytes(1), 16u);
  EXPECT_EQ(record_bytes(8), 16u);
  EXPECT_EQ(record_bytes(9), 24u);
  EXPECT_EQ(record_bytes(100), 112u);
}

TEST(Ring, EmptyReadIsEmpty) {
  shared_ring s(4096);
  ring c = s.consumer();
  uint8_t out[64];
  uint32_t len = 12345;
  EXPECT_TRUE(c.empty_for_consumer());
  EXPECT_EQ(c.try_read(out, sizeof out, &len), read_status::empty);
  EXPECT_EQ(len, 12345u) << "an empty read must not report a length";
  EXPECT_EQ(c.try_read(out, sizeof out, &len), read_status::empty);
  EXPECT_FALSE(c.corrupt());
  EXPECT_EQ(s.idx->tail.load(), 0u);
}

TEST(Ring, WriteReadRoundTrip) {
  shared_ring s(4096);
  ring p = s.producer();
  ring c = s.consumer();
  const auto a = pattern(32, 1);
  const auto b = pattern(77, 2);
  ASSERT_TRUE(p.try_write(a.data(), 32, b.data(), 77));
  EXPECT_FALSE(c.empty_for_consumer());
  EXPECT_EQ(s.idx->head.load(), record_bytes(109));

  std::vector<uint8_t> out(200, 0);
  uint32_t len = 0;
  ASSERT_EQ(c.try_read(out.data(), 200, &len), read_status::ok);
  ASSERT_EQ(len, 109u);
  EXPECT_EQ(std::memcmp(out.data(), a.data(), 32), 0);
  EXPECT_EQ(std::memcmp(out.data() + 32, b.data(), 77), 0);
  EXPECT_EQ(out[109], 0) << "read wrote past the body";
  EXPECT_EQ(s.idx->tail.load(), s.idx->head.load()) << "tail published after the read";
  EXPECT_EQ(c.try_read(out.data(), 200, &len), read_status::empty);

  // Only one piece, and an empty body, also travel.
  ASSERT_TRUE(p.try_write(a.data(), 32, nullptr, 0));
  ASSERT_TRUE(p.try_write(nullptr, 0, b.data(), 77));
  ASSERT_TRUE(p.try_write(nullptr, 0, nullptr, 0));
  ASSERT_EQ(c.try_read(out.data(), 200, &len), read_status::ok);
  EXPECT_EQ(len, 32u);
  EXPECT_EQ(std::memcmp(out.data(), a.data(), 32), 0);
  ASSERT_EQ(c.try_read(out.data(), 200, &len), read_status::ok);
  EXPECT_EQ(len, 77u);
  EXPECT_EQ(std::memcmp(out.data(), b.data(), 77), 0);
  ASSERT_EQ(c.try_read(out.data(), 200, &len), read_status::ok);
  EXPECT_EQ(len, 0u);
  EXPECT_EQ(c.try_read(out.data(), 200, &len), read_status::empty);
  EXPECT_FALSE(p.corrupt());
  EXPECT_FALSE(c.corrupt());
}

TEST(Ring, ThreePiecesRoundTrip) {
  shared_ring s(4096);
  ring p = s.producer();
  ring c = s.consumer();
  const auto a = pattern(32, 11), b = pattern(13, 12), d = pattern(101, 13);
  ASSERT_TRUE(p.try_write(a.data(), 32, b.data(), 13, d.data(), 101));
  std::vector<uint8_t> out(200, 0);
  uint32_t len = 0;
  ASSERT_EQ(c.try_read(out.data(), 200, &len), read_status::ok);
  ASSERT_EQ(len, 146u);
  EXPECT_EQ(std::memcmp(out.data(), a.data(), 32), 0);
  EXPECT_EQ(std::memcmp(out.data() + 32, b.data(), 13), 0);
  EXPECT_EQ(std::memcmp(out.data() + 45, d.data(), 101), 0);
}

// Piece lengths whose sum wraps around 2^32 must be refused, not written: the
// sum alone looks small. Run in a child so that an overrun is a failure, not a
// crash of the whole test binary.
TEST(Ring, RefusesPiecesWhoseSumWraps) {
  auto attempt = [](uint32_t na, uint32_t nb, uint32_t nc) {
    shared_ring s(4096);
    ring p = s.producer();
    std::vector<uint8_t> small(64, 0x42);
    const bool wrote = p.try_write(small.data(), na, small.data(), nb, small.data(), nc);
    std::exit(wrote || s.idx->head.load() != 0 ? 1 : 0);
  };
  EXPECT_EXIT(attempt(0xfffffff8u, 16, 0), ::testing::ExitedWithCode(0), "") << "na + nb wraps";
  EXPECT_EXIT(attempt(16, 0xfffffff8u, 0), ::testing::ExitedWithCode(0), "") << "nb huge";
  EXPECT_EXIT(attempt(8, 8, 0xfffffff8u), ::testing::ExitedWithCode(0), "") << "nc huge";
  EXPECT_EXIT(attempt(0x80000000u, 0, 0x80000008u), ::testing::ExitedWithCode(0), "") << "na + nc wraps";
}

TEST(Ring, FillUntilFullThenDrain) {
  constexpr uint64_t kCap = 4096;
  constexpr uint32_t kBody = 100;
  shared_ring s(kCap);
  ring p = s.producer();
  ring c = s.consumer();

  uint32_t written = 0;
  while (true) {
    const auto body = pattern(kBody, written);
    if (!p.try_write(body.data(), kBody, nullptr, 0)) break;
    ++written;
    ASSERT_LT(written, 1000u) << "the ring never became full";
  }
  EXPECT_EQ(written, kCap / record_bytes(kBody)) << "full before the ring was used up";
  EXPECT_LE(s.idx->head.load() - s.idx->tail.load(), kCap);
  // Full stays full, and full is not corrupt.
  const auto extra = pattern(kBody, 999);
  EXPECT_FALSE(p.try_write(extra.data(), kBody, nullptr, 0));
  EXPECT_FALSE(p.corrupt());

  std::vector<uint8_t> out(kBody);
  for (uint32_t i = 0; i < written; ++i) {
    uint32_t len = 0;
    ASSERT_EQ(c.try_read(out.data(), kBody, &len), read_status::ok) << "record " << i;
    ASSERT_EQ(len, kBody);
    EXPECT_EQ(out, pattern(kBody, i)) << "record " << i;
  }
  uint32_t len = 0;
  EXPECT_EQ(c.try_read(out.data(), kBody, &len), read_status::empty);

  // Space is back: the next write wraps with a pad record and is read intact.
  ASSERT_TRUE(p.try_write(extra.data(), kBody, nullptr, 0));
  ASSERT_EQ(c.try_read(out.data(), kBody, &len), read_status::ok);
  EXPECT_EQ(len, kBody);
  EXPECT_EQ(out, extra);
  EXPECT_GT(s.idx->head.load(), kCap) << "the last record should have wrapped";
  EXPECT_FALSE(c.corrupt());
}

TEST(Ring, WrapAroundWithOddSizesManyTimes) {
  constexpr uint64_t kCap = 8192;
  shared_ring s(kCap);
  ring p = s.producer();
  ring c = s.consumer();
  std::mt19937_64 rng(42);
  std::deque<std::vector<uint8_t>> in_flight;
  std::vector<uint8_t> out(p.max_body() + 64);
  uint64_t sent = 0, received = 0, full_seen = 0;
  constexpr uint64_t kRecords = 200000;

  while (received < kRecords) {
    // Write a burst of odd-sized records until the ring refuses one.
    const int burst = static_cast<int>(rng() % 8);
    for (int i = 0; i < burst && sent < kRecords; ++i) {
      uint32_t n;
      switch (rng() % 4) {
        case 0: n = static_cast<uint32_t>(rng() % 16); break;
        case 1: n = static_cast<uint32_t>(rng() % 200); break;
        case 2: n = static_cast<uint32_t>(rng() % 1500) | 1; break;  // odd
        default: n = static_cast<uint32_t>(rng() % (p.max_body() + 1)); break;
      }
      std::vector<uint8_t> body(n);
      for (auto& b : body) b = static_cast<uint8_t>(rng());
      const uint32_t split = n ? static_cast<uint32_t>(rng() % (n + 1)) : 0;
      if (!p.try_write(body.data(), split, body.data() + split, n - split)) {
        ++full_seen;
        ASSERT_FALSE(p.corrupt());
        break;
      }
      in_flight.push_back(std::move(body));
      ++sent;
    }
    // Read a burst back.
    const int reads = static_cast<int>(rng() % 8);
    for (int i = 0; i < reads; ++i) {
      uint32_t len = 0;
      std::fill(out.begin(), out.end(), 0);
      const read_status st = c.try_read(out.data(), static_cast<uint32_t>(out.size()), &len);
      ASSERT_NE(st, read_status::corrupt) << "after " << received << " records";
      if (st == read_status::empty) {
        ASSERT_TRUE(in_flight.empty()) << "records written but the ring reads empty";
        break;
      }
      ASSERT_FALSE(in_flight.empty()) << "read a record that was never written";
      const std::vector<uint8_t>& want = in_flight.front();
      ASSERT_EQ(len, want.size()) << "record " << received;
      ASSERT_EQ(std::memcmp(out.data(), want.data(), len), 0) << "record " << received;
      in_flight.pop_front();
      ++received;
    }
  }
  uint32_t len = 0;
  EXPECT_EQ(c.try_read(out.data(), static_cast<uint32_t>(out.size()), &len), read_status::empty);
  EXPECT_EQ(s.idx->head.load(), s.idx->tail.load());
  EXPECT_GT(s.idx->head.load() / kCap, 1000u) << "the ring should have wrapped many times";
  EXPECT_GT(full_seen, 0u) << "the test never filled the ring";
}

TEST(Ring, RefusesBodiesLargerThanMaxBody) {
  for (uint64_t cap : {uint64_t{4096}, uint64_t{65536}, uint64_t{1} << 20}) {
    SCOPED_TRACE(cap);
    shared_ring s(cap);
    ring p = s.producer();
    ring c = s.consumer();
    const uint32_t max = p.max_body();
    EXPECT_LE(max, kMaxRecordBody);
    EXPECT_LE(record_bytes(max), cap / 2 + 8);
    std::vector<uint8_t> big(max + 8, 0x5A);
    EXPECT_FALSE(p.try_write(big.data(), max + 1, nullptr, 0));
    EXPECT_FALSE(p.try_write(big.data(), max, big.data(), 1)) << "two pieces over the limit";
    EXPECT_EQ(s.idx->head.load(), 0u) << "a refused write must not move head";
    EXPECT_FALSE(p.corrupt());
    ASSERT_TRUE(p.try_write(big.data(), max - 3, big.data(), 3)) << "exactly max_body fits";
    std::vector<uint8_t> out(max);
    uint32_t len = 0;
    ASSERT_EQ(c.try_read(out.data(), max, &len), read_status::ok);
    EXPECT_EQ(len, max);
    EXPECT_EQ(std::vector<uint8_t>(big.begin(), big.begin() + max), out);
  }
}

// A hostile peer -------------------------------------------------------------------

void expect_corrupt_read(shared_ring& s, ring& c, const char* what) {
  std::vector<uint8_t> out(kMaxRecordBody + 64, 0);
  uint32_t len = 777;
  const uint64_t tail_before = s.idx->tail.load();
  EXPECT_EQ(c.try_read(out.data(), kMaxRecordBody, &len), read_status::corrupt) << what;
  EXPECT_TRUE(c.corrupt()) << what;
  EXPECT_EQ(s.idx->tail.load(), tail_before) << what << ": tail moved over a corrupt record";
}

TEST(RingCorrupt, HeadBehindTail) {
  shared_ring s(4096, 512, 512);
  ring c = s.consumer();
  s.idx->head.store(504);
  expect_corrupt_read(s, c, "head < tail");
}

TEST(RingCorrupt, HeadTooFarAhead) {
  shared_ring s(4096);
  ring c = s.consumer();
  s.idx->head.store(4096 + 8);
  expect_corrupt_read(s, c, "head - tail > capacity");
  shared_ring s2(4096, 1ull << 40, 1ull << 40);
  ring c2 = s2.consumer();
  s2.idx->head.store(~0ull);
  expect_corrupt_read(s2, c2, "head near 2^64");
}

TEST(RingCorrupt, HeadInsideAFrame) {
  shared_ring s(4096);
  ring c = s.consumer();
  s.put_frame(0, 0, kRecordMessage);
  s.idx->head.store(4);  // less than one frame published
  expect_corrupt_read(s, c, "head - tail < sizeof(record_frame)");
}

TEST(RingCorrupt, BadKind) {
  for (uint32_t kind : {0u, 3u, 0xffffffffu}) {
    shared_ring s(4096);
    ring c = s.consumer();
    s.put_frame(0, 8, kind);
    s.idx->head.store(16);
    expect_corrupt_read(s, c, "unknown record kind");
  }
}

TEST(RingCorrupt, LengthPastHead) {
  shared_ring s(4096);
  ring c = s.consumer();
  s.put_frame(0, 100, kRecordMessage);
  s.idx->head.store(16);  // the body would need 112 bytes
  expect_corrupt_read(s, c, "length past head");
}

TEST(RingCorrupt, LengthPastTheEndOfTheRing) {
  // A record must never wrap: one that starts near the end and claims to run past it.
  shared_ring s(4096, 4096 - 64, 4096 - 64);
  ring c = s.consumer();
  s.put_frame(4096 - 64, 200, kRecordMessage);
  s.idx->head.store(4096 - 64 + 256);
  expect_corrupt_read(s, c, "record wrapping the end of the ring");
}

TEST(RingCorrupt, LengthOverMaxRecordBody) {
  shared_ring s(1ull << 20);
  ring c = s.consumer();
  s.put_frame(0, kMaxRecordBody + 8, kRecordMessage);
  s.idx->head.store(record_bytes(kMaxRecordBody + 8));
  expect_corrupt_read(s, c, "length > kMaxRecordBody");
  shared_ring s2(4096);
  ring c2 = s2.consumer();
  s2.put_frame(0, 0xfffffff8u, kRecordMessage);
  s2.idx->head.store(4096);
  expect_corrupt_read(s2, c2, "length near 2^32");
}

TEST(RingCorrupt, BodyLargerThanTheReadersBuffer) {
  shared_ring s(4096);
  ring p = s.producer();
  ring c = s.consumer();
  const auto body = pattern(100, 3);
  ASSERT_TRUE(p.try_write(body.data(), 100, nullptr, 0));
  std::vector<uint8_t> out(100, 0);
  uint32_t len = 0;
  EXPECT_NE(c.try_read(out.data(), 10, &len), read_status::ok);
  for (size_t i = 10; i < out.size(); ++i)
    ASSERT_EQ(out[i], 0) << "read wrote past out_cap at byte " << i;
}

TEST(RingCorrupt, PadWithWrongLength) {
  shared_ring s(4096, 4096 - 64, 4096 - 64);
  ring c = s.consumer();
  s.put_frame(4096 - 64, 8, kRecordPad);  // must be 64 - 8 = 56
  s.idx->head.store(4096 + 64);
  expect_corrupt_read(s, c, "pad shorter than the rest of the ring");
  shared_ring s2(4096);
  ring c2 = s2.consumer();
  s2.put_frame(0, 4096, kRecordPad);  // frame + 4096 > capacity
  s2.idx->head.store(4096);
  expect_corrupt_read(s2, c2, "pad longer than the ring");
}

TEST(RingCorrupt, PadPastHead) {
  // A correct pad, but head says the producer never wrote that far.
  shared_ring s(4096, 4096 - 64, 4096 - 64);
  ring c = s.consumer();
  s.put_frame(4096 - 64, 56, kRecordPad);
  s.idx->head.store(4096 - 64 + 16);
  expect_corrupt_read(s, c, "pad covering bytes beyond head");
}

TEST(RingCorrupt, ValidPadIsFollowed) {
  // The control case for the two above: the same pad with head far enough is fine.
  shared_ring s(4096, 4096 - 64, 4096 - 64);
  ring c = s.consumer();
  s.put_frame(4096 - 64, 56, kRecordPad);
  s.put_frame(0, 5, kRecordMessage);
  std::memcpy(s.buf.data() + 8, "hello", 5);
  s.idx->head.store(4096 + 16);
  char out[16] = {};
  uint32_t len = 0;
  ASSERT_EQ(c.try_read(out, sizeof out, &len), read_status::ok);
  EXPECT_EQ(len, 5u);
  EXPECT_EQ(std::memcmp(out, "hello", 5), 0);
  EXPECT_EQ(s.idx->tail.load(), 4096u + 16);
  EXPECT_FALSE(c.corrupt());
}

TEST(RingCorrupt, ProducerRefusesImpossibleTail) {
  {
    shared_ring s(4096);
    ring p = s.producer();
    s.idx->tail.store(64);  // consumer claims to have read what was never written
    uint8_t b[16] = {};
    EXPECT_FALSE(p.try_write(b, sizeof b, nullptr, 0));
    EXPECT_TRUE(p.corrupt());
    EXPECT_EQ(s.idx->head.load(), 0u);
  }
  {
    shared_ring s(4096, 3 * 4096, 3 * 4096);
    ring p = s.producer();
    s.idx->tail.store(3 * 4096 - 4096 - 8);  // head - tail > capacity
    uint8_t b[16] = {};
    EXPECT_FALSE(p.try_write(b, sizeof b, nullptr, 0));
    EXPECT_TRUE(p.corrupt());
    EXPECT_EQ(s.idx->head.load(), 3u * 4096);
  }
  {
    shared_ring s(4096, 3 * 4096, 3 * 4096);
    ring p = s.producer();
    s.idx->tail.store(~0ull);
    uint8_t b[16] = {};
    EXPECT_FALSE(p.try_write(b, sizeof b, nullptr, 0));
    EXPECT_TRUE(p.corrupt());
  }
}

TEST(RingCorrupt, ProducerTrustsOnlyItsOwnHead) {
  // The consumer (or anyone) scribbling on head does not make the producer
  // overwrite unread records: it keeps its private head.
  shared_ring s(4096);
  ring p = s.producer();
  ring c = s.consumer();
  const auto a = pattern(40, 7);
  ASSERT_TRUE(p.try_write(a.data(), 40, nullptr, 0));
  s.idx->head.store(0);  // scribble
  const auto b = pattern(40, 8);
  ASSERT_TRUE(p.try_write(b.data(), 40, nullptr, 0));  // republishes its own head
  std::vector<uint8_t> out(40);
  uint32_t len = 0;
  ASSERT_EQ(c.try_read(out.data(), 40, &len), read_status::ok);
  EXPECT_EQ(out, a);
  ASSERT_EQ(c.try_read(out.data(), 40, &len), read_status::ok);
  EXPECT_EQ(out, b);
}

}  // namespace
}  // namespace vgpu::protocol
