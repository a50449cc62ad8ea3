// The shared region: the bytes behind ivshmem BAR2 (a VM) or the memfd a local
// guest process maps. Written down here before any code uses it, like a device
// spec: every offset the guest needs is in the header, so the guest never
// computes the layout itself and the host may change it in a later minor version.
//
//   offset 0                 region_header (one 4 KiB page)
//   header.channel_table     channel_count x channel_slot      (claim words)
//   header.channel_offset    channel 0: ctl page | request ring | response ring | notify ring | data area
//   + k * channel_stride     channel k
//
// All integers are little-endian, naturally aligned. The region is writable by
// the guest at all times: the host validates the header it wrote itself only at
// creation, and never trusts any guest-written value (ring indices, claim words,
// offsets in messages) without checking it against the sizes it keeps privately.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

namespace vgpu::protocol {

inline constexpr uint64_t kRegionMagic = 0x3142545355504756ull;  // "VGPUSTB1"
inline constexpr uint16_t kVersionMajor = 1;  // a guest refuses an unknown major
inline constexpr uint16_t kVersionMinor = 0;  // the host accepts older minors

// Feature bits announced by the host in region_header::features.
enum feature : uint64_t {
  kFeatureHostWakeEventfd = 1u << 0,  // the host signals a sleeping guest (local transport)
};

inline constexpr uint64_t kHeaderBytes = 4096;
inline constexpr uint64_t kCacheLine = 64;
inline constexpr uint32_t kOwnerTokenBit = 0x80000000u;  // owner = pid | this

struct region_header {
  uint64_t magic;
  uint16_t version_major;
  uint16_t version_minor;
  uint32_t header_bytes;
  uint64_t region_bytes;
  uint64_t features;
  uint32_t channel_count;
  uint32_t reserved0;
  uint64_t channel_table_offset;  // channel_slot[channel_count]
  uint64_t channel_offset;        // first channel
  uint64_t channel_stride;        // bytes from one channel to the next
  uint64_t ring_bytes;            // capacity of each of the three rings (power of two)
  uint64_t data_bytes;            // data area of each channel
  uint64_t host_generation;       // changes each time a mediator (re)creates the region
};

// Claim word of one channel. A guest process claims a free channel with a CAS
// of owner from 0 to its token (pid | 0x80000000) and then bumps generation;
// the host sees the new generation, frees what the channel's previous owner
// left (its CUDA context and memory), resets the rings and publishes
// ready_generation = generation; only then does the guest use the rings. A
// process that exits stores owner = 0; one that died is reclaimed by the next
// process of its VM that finds its pid gone.
struct channel_slot {
  std::atomic<uint32_t> owner;
  std::atomic<uint32_t> generation;
  std::atomic<uint32_t> ready_generation;  // host-written
  uint8_t pad[kCacheLine - 12];
};

// Host-written liveness, in the header page at kLiveOffset: the mediator bumps
// heartbeat several times a second while it serves the region, so a guest
// that cannot see the host's socket (a VM) notices a dead mediator.
inline constexpr uint64_t kLiveOffset = 2048;
struct region_live {
  std::atomic<uint64_t> host_heartbeat;
};

// Indices of one ring, each on its own cache line so producer and consumer
// never share one. head and tail count bytes and grow without bound; the
// position in the ring is index & (ring_bytes - 1).
struct ring_indices {
  alignas(kCacheLine) std::atomic<uint64_t> head;           // written by the producer
  alignas(kCacheLine) std::atomic<uint64_t> tail;           // written by the consumer
  alignas(kCacheLine) std::atomic<uint32_t> consumer_sleeping;  // consumer is about to block
};

// First page of each channel.
struct channel_ctl {
  ring_indices request;   // guest produces, host consumes
  ring_indices response;  // host produces, guest consumes: replies to calls, in order
  ring_indices notify;    // host produces, guest consumes: events the guest did not ask
                          // for at that moment (a stream reached a host function)
  // How many notifications the guest has handled (it handles them in ring
  // order); a host stream waits on it (guest-written: only compared, never trusted).
  alignas(kCacheLine) std::atomic<uint64_t> notify_done;
};

static_assert(sizeof(region_header) <= kLiveOffset, "header must end before the live block");
static_assert(kLiveOffset + sizeof(region_live) <= kHeaderBytes, "the live block must fit the header page");
static_assert(sizeof(channel_slot) == kCacheLine, "one claim word per cache line");
static_assert(sizeof(channel_ctl) <= 4096, "channel control must fit a page");
static_assert(std::atomic<uint64_t>::is_always_lock_free, "shared atomics must be lock-free");
static_assert(std::atomic<uint32_t>::is_always_lock_free, "shared atomics must be lock-free");

// Where the pieces of one channel sit, relative to the region base.
struct channel_view {
  uint64_t ctl_offset;
  uint64_t request_ring_offset;
  uint64_t response_ring_offset;
  uint64_t notify_ring_offset;
  uint64_t data_offset;
};

inline constexpr bool is_power_of_two(uint64_t v) { return v != 0 && (v & (v - 1)) == 0; }
inline constexpr uint64_t align_up(uint64_t v, uint64_t a) { return (v + a - 1) / a * a; }

// Computes the layout the host writes into a new region. Returns false (and a
// reason) when the sizes cannot make a usable region.
bool make_layout(uint64_t region_bytes, uint32_t channel_count, uint64_t ring_bytes,
                 region_header* out, std::string* why);

// Checks a header read from a region (guest side, and the host's own
// self-check): magic, major version, and that every channel lies inside
// region_bytes. `why` says what is wrong.
bool validate_header(const region_header& h, uint64_t mapped_bytes, std::string* why);

channel_view channel_at(const region_header& h, uint32_t index);

}  // namespace vgpu::protocol

namespace vgpu::protocol {
// Interrupt vectors per peer in the ivshmem handshake (QEMU `vectors=2`):
// vector 0 carries doorbells for the request rings, vector 1 is reserved.
inline constexpr int kVectors = 2;
}  // namespace vgpu::protocol
