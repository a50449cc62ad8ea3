// QEMU's ivshmem server protocol (docs/specs/ivshmem-spec.rst), spoken on a
// UNIX stream socket by the mediator (server, peer 0) and by whoever connects:
// QEMU for a VM, or the shim's local transport for a process on the host. Each
// message is a little-endian int64, optionally carrying one fd (SCM_RIGHTS):
//
//   1. protocol version (0)           2. the client's own peer id
//   3. -1 with the shared-memory fd   4. for each other peer: its id N times, each with an eventfd
//   5. the client's own id N times, each with an eventfd (its own interrupt vectors)
//
// vgpu sends `0, 1, -1+memfd, 0+host_ev[0..N-1], 1+guest_ev[0..N-1]`: the
// guest rings the host by signalling host_ev[v]; the host wakes a sleeping
// local guest by signalling guest_ev[v].
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace vgpu::protocol {

inline constexpr int64_t kIvshmemProtocolVersion = 0;
inline constexpr int64_t kHostPeerId = 0;
inline constexpr int64_t kGuestPeerId = 1;

// Sends one message; fd < 0 sends none. Returns false and errno on failure.
bool send_ivshmem_msg(int sock, int64_t value, int fd);

// Receives one message; *fd is -1 when none came. Returns false on EOF or error.
bool recv_ivshmem_msg(int sock, int64_t* value, int* fd, int timeout_ms);

// What a client learns from the handshake. The fds are owned by the caller.
struct ivshmem_client_view {
  int64_t own_id = -1;
  int shm_fd = -1;
  std::vector<int> host_vectors;  // eventfds to signal the host (peer 0), by vector
  std::vector<int> own_vectors;   // eventfds the host signals to wake us, by vector
};

// Reads a whole server handshake for `vectors` vectors (the client side).
// Closes what it received on failure.
bool read_ivshmem_handshake(int sock, int vectors, int timeout_ms, ivshmem_client_view* out,
                            std::string* why);

}  // namespace vgpu::protocol
