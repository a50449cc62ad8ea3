// The rings between two processes, as guest and host use them: a region laid out
// by make_layout in a memfd mapped MAP_SHARED by both sides of a fork(). The child
// is the guest (it produces requests); the parent is the host. Records carry a
// sequence number and a checksum so that any lost, repeated, reordered or torn
// record is caught.
#include <gtest/gtest.h>

#include <sched.h>
#include <signal.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <functional>
#include <new>
#include <string>
#include <vector>

#include "protocol/message.h"
#include "protocol/region_layout.h"
#include "protocol/ring.h"

namespace vgpu::protocol {
namespace {

constexpr uint64_t kRegionBytes = 1ull << 20;
constexpr uint64_t kRingBytes = 64 * 1024;

struct rec_header {
  uint64_t seq;
  uint32_t len;       // payload bytes after this header
  uint32_t checksum;  // FNV-1a of the payload, seeded with seq
};

uint64_t splitmix(uint64_t x) {
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

uint32_t fnv1a(const uint8_t* p, uint32_t n, uint64_t seed) {
  uint32_t h = 2166136261u ^ static_cast<uint32_t>(seed);
  for (uint32_t i = 0; i < n; ++i) h = (h ^ p[i]) * 16777619u;
  return h;
}

// Payload length of record `seq`: mostly small, sometimes up to the ring's limit.
uint32_t payload_len(uint64_t seq, uint32_t max_payload) {
  const uint64_t r = splitmix(seq * 7 + 1);
  switch (r % 8) {
    case 0: return 0;
    case 1: case 2: case 3: return static_cast<uint32_t>((r >> 8) % 64);
    case 4: case 5: return static_cast<uint32_t>((r >> 8) % 1024);
    case 6: return static_cast<uint32_t>((r >> 8) % 8192);
    default: return static_cast<uint32_t>((r >> 8) % (max_payload + 1));
  }
}

void fill_payload(uint64_t seq, uint8_t* p, uint32_t n) {
  uint64_t x = splitmix(seq);
  for (uint32_t i = 0; i < n; ++i) {
    if (i % 8 == 0) x = splitmix(x);
    p[i] = static_cast<uint8_t>(x >> ((i % 8) * 8));
  }
}

// Builds record `seq` into buf; returns its length.
uint32_t make_record(uint64_t seq, uint32_t max_payload, std::vector<uint8_t>* buf) {
  rec_header h{};
  h.seq = seq;
  h.len = payload_len(seq, max_payload);
  buf->resize(sizeof h + h.len);
  fill_payload(seq, buf->data() + sizeof h, h.len);
  h.checksum = fnv1a(buf->data() + sizeof h, h.len, seq);
  std::memcpy(buf->data(), &h, sizeof h);
  return static_cast<uint32_t>(buf->size());
}

// Empty string when `body` is exactly record `seq`; otherwise what is wrong.
std::string check_record(uint64_t seq, const uint8_t* body, uint32_t len, uint32_t max_payload) {
  if (len < sizeof(rec_header)) return "record " + std::to_string(seq) + " too short: " + std::to_string(len);
  rec_header h;
  std::memcpy(&h, body, sizeof h);
  if (h.seq != seq) return "expected seq " + std::to_string(seq) + ", got " + std::to_string(h.seq);
  if (h.len != payload_len(seq, max_payload) || len != sizeof h + h.len)
    return "record " + std::to_string(seq) + ": wrong length " + std::to_string(len);
  if (fnv1a(body + sizeof h, h.len, seq) != h.checksum)
    return "record " + std::to_string(seq) + ": checksum mismatch";
  std::vector<uint8_t> want(h.len);
  fill_payload(seq, want.data(), h.len);
  if (std::memcmp(want.data(), body + sizeof h, h.len) != 0)
    return "record " + std::to_string(seq) + ": payload differs";
  return {};
}

// A memfd region with one channel, mapped shared, rings initialised.
class TwoProcessRing : public ::testing::Test {
 protected:
  void SetUp() override {
    fd_ = memfd_create("vgpu-ring-test", MFD_CLOEXEC);
    ASSERT_GE(fd_, 0) << std::strerror(errno);
    ASSERT_EQ(ftruncate(fd_, static_cast<off_t>(kRegionBytes)), 0) << std::strerror(errno);
    void* p = mmap(nullptr, kRegionBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd_, 0);
    ASSERT_NE(p, MAP_FAILED) << std::strerror(errno);
    base_ = static_cast<uint8_t*>(p);
    std::string why;
    region_header h{};
    ASSERT_TRUE(make_layout(kRegionBytes, 1, kRingBytes, &h, &why)) << why;
    std::memcpy(base_, &h, sizeof h);
    const channel_view v = channel_at(h, 0);
    ctl_ = new (base_ + v.ctl_offset) channel_ctl();
    req_buf_ = base_ + v.request_ring_offset;
    rep_buf_ = base_ + v.response_ring_offset;
  }

  void TearDown() override {
    if (child_ > 0) {  // the test failed before reaping it
      kill(child_, SIGKILL);
      waitpid(child_, nullptr, 0);
    }
    if (base_) munmap(base_, kRegionBytes);
    if (fd_ >= 0) close(fd_);
  }

  // Runs `body` in a child; its return value is the child's exit code.
  void spawn(const std::function<int()>& body) {
    child_ = fork();
    ASSERT_GE(child_, 0) << std::strerror(errno);
    if (child_ == 0) {
      int rc = 99;
      try {
        // The child, like a guest, trusts only a header that validates.
        region_header h;
        std::memcpy(&h, base_, sizeof h);
        std::string why;
        rc = validate_header(h, kRegionBytes, &why) ? body() : 98;
      } catch (...) {
        rc = 97;
      }
      _exit(rc);
    }
  }

  // True while the child runs; once it exited, its status goes to *status.
  bool child_running(int* status) {
    const pid_t r = waitpid(child_, status, WNOHANG);
    if (r == child_) {
      child_ = -1;
      return false;
    }
    return true;
  }

  int wait_child() {
    int status = 0;
    EXPECT_EQ(waitpid(child_, &status, 0), child_);
    child_ = -1;
    return status;
  }

  int fd_ = -1;
  uint8_t* base_ = nullptr;
  channel_ctl* ctl_ = nullptr;
  uint8_t* req_buf_ = nullptr;
  uint8_t* rep_buf_ = nullptr;
  pid_t child_ = -1;
};

TEST_F(TwoProcessRing, ChildProducesParentConsumes) {
  constexpr uint64_t kRecords = 200000;
  ring consumer(&ctl_->request, req_buf_, kRingBytes);
  const uint32_t max_payload = consumer.max_body() - static_cast<uint32_t>(sizeof(rec_header));

  spawn([&]() -> int {
    ring producer(&ctl_->request, req_buf_, kRingBytes);
    std::vector<uint8_t> rec;
    for (uint64_t seq = 0; seq < kRecords; ++seq) {
      const uint32_t n = make_record(seq, max_payload, &rec);
      // Header and payload as two pieces, split at the record header, as the shim does.
      while (!producer.try_write(rec.data(), sizeof(rec_header), rec.data() + sizeof(rec_header),
                                 n - static_cast<uint32_t>(sizeof(rec_header)))) {
        if (producer.corrupt()) return 2;
        sched_yield();
      }
    }
    return 0;
  });
  ASSERT_GT(child_, 0);

  std::vector<uint8_t> out(consumer.max_body());
  uint64_t seq = 0;
  int status = 0;
  bool exited = false;
  while (seq < kRecords) {
    uint32_t len = 0;
    const read_status st = consumer.try_read(out.data(), static_cast<uint32_t>(out.size()), &len);
    ASSERT_NE(st, read_status::corrupt) << "at record " << seq;
    if (st == read_status::empty) {
      if (exited) {
        // The child is gone and everything it published has been read.
        ASSERT_TRUE(consumer.empty_for_consumer());
        FAIL() << "child exited (status " << status << ") after only " << seq << " records";
      }
      exited = !child_running(&status);
      sched_yield();
      continue;
    }
    const std::string err = check_record(seq, out.data(), len, max_payload);
    ASSERT_TRUE(err.empty()) << err;
    ++seq;
  }
  uint32_t len = 0;
  if (!exited) status = wait_child();
  ASSERT_TRUE(WIFEXITED(status)) << "child died of signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0);
  EXPECT_EQ(consumer.try_read(out.data(), static_cast<uint32_t>(out.size()), &len), read_status::empty)
      << "records beyond the last one";
  EXPECT_EQ(ctl_->request.head.load(), ctl_->request.tail.load());
  EXPECT_GT(ctl_->request.head.load(), 100 * kRingBytes) << "the ring should have wrapped many times";
}

// Both rings at once: the child sends requests and checks the echoes the parent
// sends back on the response ring, without waiting for each (pipelined).
TEST_F(TwoProcessRing, RequestsAndEchoedResponsesBothWays) {
  constexpr uint64_t kRecords = 50000;
  ring req_consumer(&ctl_->request, req_buf_, kRingBytes);
  ring rep_producer(&ctl_->response, rep_buf_, kRingBytes);
  const uint32_t max_payload = req_consumer.max_body() - static_cast<uint32_t>(sizeof(rec_header));

  spawn([&]() -> int {
    ring req_producer(&ctl_->request, req_buf_, kRingBytes);
    ring rep_consumer(&ctl_->response, rep_buf_, kRingBytes);
    std::vector<uint8_t> rec, out(rep_consumer.max_body());
    uint64_t sent = 0, echoed = 0;
    while (echoed < kRecords) {
      bool progress = false;
      if (sent < kRecords) {
        const uint32_t n = make_record(sent, max_payload, &rec);
        if (req_producer.try_write(rec.data(), n, nullptr, 0)) {
          ++sent;
          progress = true;
        } else if (req_producer.corrupt()) {
          return 2;
        }
      }
      uint32_t len = 0;
      const read_status st = rep_consumer.try_read(out.data(), static_cast<uint32_t>(out.size()), &len);
      if (st == read_status::corrupt) return 3;
      if (st == read_status::ok) {
        if (!check_record(echoed, out.data(), len, max_payload).empty()) return 4;
        ++echoed;
        progress = true;
      }
      if (!progress) sched_yield();
    }
    return 0;
  });
  ASSERT_GT(child_, 0);

  std::vector<uint8_t> msg(req_consumer.max_body());
  uint32_t pending_len = 0;
  bool pending = false;
  uint64_t seq = 0;
  int status = 0;
  bool exited = false;
  while (seq < kRecords || pending) {
    bool progress = false;
    if (pending) {
      if (rep_producer.try_write(msg.data(), pending_len, nullptr, 0)) {
        pending = false;
        progress = true;
      } else {
        ASSERT_FALSE(rep_producer.corrupt());
      }
    } else {
      uint32_t len = 0;
      const read_status st = req_consumer.try_read(msg.data(), static_cast<uint32_t>(msg.size()), &len);
      ASSERT_NE(st, read_status::corrupt) << "at record " << seq;
      if (st == read_status::ok) {
        const std::string err = check_record(seq, msg.data(), len, max_payload);
        ASSERT_TRUE(err.empty()) << err;
        ++seq;
        pending = true;
        pending_len = len;
        progress = true;
      }
    }
    if (!progress) {
      if (exited) FAIL() << "child exited (status " << status << ") after " << seq << " requests";
      exited = !child_running(&status);
      sched_yield();
    }
  }
  if (!exited) status = wait_child();
  ASSERT_TRUE(WIFEXITED(status)) << "child died of signal " << WTERMSIG(status);
  EXPECT_EQ(WEXITSTATUS(status), 0) << "2/3: a ring looked corrupt to the child, 4: a bad echo";
  EXPECT_EQ(ctl_->response.head.load(), ctl_->response.tail.load());
}

}  // namespace
}  // namespace vgpu::protocol
