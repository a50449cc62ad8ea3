// Single-producer single-consumer byte ring over shared memory (see message.h
// for the record format). Each side keeps its own index privately and only
// publishes it; the index it reads from the other side is checked before use,
// because the other side may be a hostile guest. A corrupt ring is reported,
// never followed.
#pragma once

#include <atomic>
#include <cstdint>
#include <cstring>

#include "protocol/message.h"
#include "protocol/region_layout.h"

namespace vgpu::protocol {

enum class read_status { empty, ok, corrupt };

inline constexpr uint32_t record_bytes(uint32_t body) {
  return static_cast<uint32_t>(sizeof(record_frame) + align_up(body, 8));
}

class ring {
 public:
  ring() = default;
  // `capacity` is the caller's own trusted value (power of two), never one read
  // from shared memory. Private indices start from what is published.
  ring(ring_indices* idx, uint8_t* buf, uint64_t capacity)
      : idx_(idx), buf_(buf), cap_(capacity),
        head_(idx->head.load(std::memory_order_acquire)),
        tail_(idx->tail.load(std::memory_order_acquire)) {}

  uint64_t capacity() const { return cap_; }
  ring_indices* indices() const { return idx_; }

  // Largest body that can ever be written (so a writer can refuse early).
  uint32_t max_body() const {
    const uint64_t half = cap_ / 2 - sizeof(record_frame);
    return static_cast<uint32_t>(half < kMaxRecordBody ? half : kMaxRecordBody);
  }

  // Producer: writes one record made of up to three pieces (header, fixed
  // arguments, a trailing blob). Returns false when there is no room now;
  // corrupt() tells a ring whose consumer index is impossible.
  bool try_write(const void* a, uint32_t na, const void* b, uint32_t nb, const void* c = nullptr,
                 uint32_t nc = 0) {
    const uint64_t total = uint64_t{na} + nb + nc;  // 64-bit: a sum of pieces must not wrap
    if (total > max_body()) return false;
    const uint32_t body = static_cast<uint32_t>(total);
    const uint64_t tail = idx_->tail.load(std::memory_order_acquire);
    if (tail > head_ || head_ - tail > cap_) {
      corrupt_ = true;
      return false;
    }
    const uint64_t used = head_ - tail;
    const uint64_t need = record_bytes(body);
    const uint64_t pos = head_ & (cap_ - 1);
    const uint64_t to_end = cap_ - pos;
    uint64_t head = head_;
    if (to_end < need) {
      if (cap_ - used < to_end + need) return false;
      record_frame pad{static_cast<uint32_t>(to_end - sizeof(record_frame)), kRecordPad};
      std::memcpy(buf_ + pos, &pad, sizeof pad);
      head += to_end;
    } else if (cap_ - used < need) {
      return false;
    }
    uint8_t* dst = buf_ + (head & (cap_ - 1));
    record_frame f{body, kRecordMessage};
    std::memcpy(dst, &f, sizeof f);
    if (na) std::memcpy(dst + sizeof f, a, na);
    if (nb) std::memcpy(dst + sizeof f + na, b, nb);
    if (nc) std::memcpy(dst + sizeof f + na + nb, c, nc);
    head_ = head + need;
    idx_->head.store(head_, std::memory_order_release);
    return true;
  }

  // Consumer: copies the next message body into out (at most out_cap bytes)
  // before anyone parses it, skipping pad records.
  read_status try_read(void* out, uint32_t out_cap, uint32_t* len) {
    for (;;) {
      const uint64_t head = idx_->head.load(std::memory_order_acquire);
      if (head < tail_ || head - tail_ > cap_) return corrupt_ = true, read_status::corrupt;
      if (head == tail_) return read_status::empty;
      const uint64_t pos = tail_ & (cap_ - 1);
      const uint64_t to_end = cap_ - pos;
      const uint64_t avail = head - tail_;
      if (avail < sizeof(record_frame)) return corrupt_ = true, read_status::corrupt;
      record_frame f;
      std::memcpy(&f, buf_ + pos, sizeof f);
      if (f.kind == kRecordPad) {
        if (f.length != to_end - sizeof(record_frame) || avail < to_end)
          return corrupt_ = true, read_status::corrupt;
        tail_ += to_end;
        idx_->tail.store(tail_, std::memory_order_release);
        continue;
      }
      if (f.kind != kRecordMessage || f.length > kMaxRecordBody) return corrupt_ = true, read_status::corrupt;
      const uint64_t need = record_bytes(f.length);
      if (need > to_end || need > avail || f.length > out_cap) return corrupt_ = true, read_status::corrupt;
      std::memcpy(out, buf_ + pos + sizeof f, f.length);
      *len = f.length;
      tail_ += need;
      idx_->tail.store(tail_, std::memory_order_release);
      return read_status::ok;
    }
  }

  // True when the consumer has nothing to read (a cheap check for spinning).
  bool empty_for_consumer() const {
    return idx_->head.load(std::memory_order_acquire) == tail_;
  }
  bool corrupt() const { return corrupt_; }

 private:
  ring_indices* idx_ = nullptr;
  uint8_t* buf_ = nullptr;
  uint64_t cap_ = 0;
  uint64_t head_ = 0;  // producer's private index
  uint64_t tail_ = 0;  // consumer's private index
  bool corrupt_ = false;
};

}  // namespace vgpu::protocol
