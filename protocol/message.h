// Message framing inside the rings.
//
// A ring carries records. Each record is a record_frame (8 bytes) followed by
// its body, padded to 8 bytes. A record never wraps around the end of the ring:
// when the next one does not fit before the end, the producer writes a pad
// record that covers the rest and starts again at position 0.
//
// The body of a message record is a msg_header followed by arg_len bytes of
// arguments (request) or results (response), packed as the API description
// says (generated wire structs). Bulk data never travels in a ring: it goes
// through the channel's data area, referenced by data_ref fields.
#pragma once

#include <cstdint>

namespace vgpu::protocol {

enum record_kind : uint32_t {
  kRecordMessage = 1,
  kRecordPad = 2,
};

struct record_frame {
  uint32_t length;  // bytes of the body, not counting this frame or padding
  uint32_t kind;    // record_kind
};

enum msg_flags : uint16_t {
  kFlagPosted = 1u << 0,  // no response expected (stream-ordered calls, later issues)
};

struct msg_header {
  uint16_t call_id;
  uint16_t flags;
  uint32_t arg_len;   // bytes following this header
  uint64_t seq;       // chosen by the guest, echoed in the response
  int32_t status;     // response: a cudaError_t value; request: 0
  int32_t device;     // the guest thread's current device
  uint64_t data_len;  // request: data-area bytes this call touches (for logs and metrics)
};

// A reference to bytes in the sender's channel data area. The receiver checks
// offset + length against the data area size it holds privately.
struct data_ref {
  uint64_t offset;
  uint64_t length;
};

// Variable-length bytes that follow a request's fixed arguments inline in the
// ring (a kernel's parameter block): guest-side view, never on the wire itself.
struct blob {
  const void* data;
  uint32_t size;
};

static_assert(sizeof(record_frame) == 8, "frame layout is part of the ABI");
static_assert(sizeof(msg_header) == 32, "header layout is part of the ABI");
static_assert(sizeof(data_ref) == 16, "data_ref layout is part of the ABI");

// The largest record body either side accepts; larger ones mean a corrupt ring.
inline constexpr uint32_t kMaxRecordBody = 64 * 1024;

}  // namespace vgpu::protocol
