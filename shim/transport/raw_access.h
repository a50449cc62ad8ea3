// Raw access to the process's channel, for tests of hostile or malformed
// input that the CUDA API cannot produce. Not used by the CUDA functions.
#pragma once

#include <cstdint>
#include <vector>

#include <driver_types.h>

namespace vgpu::shim::raw {

// Sends one message (header built from these values) and waits for its reply.
// Returns the host's status or a transport error (cudaErrorDevicesUnavailable
// when the mediator is gone).
cudaError_t call(uint16_t call_id, const void* args, uint32_t arg_len, std::vector<uint8_t>* reply);

// Posts one call (no reply awaited: the host answers stream-ordered calls only
// through the next synchronising call), as the shim posts them.
cudaError_t post(uint16_t call_id, const void* args, uint32_t arg_len);

// Writes an arbitrary record body (no msg_header added) into the request ring
// and rings the doorbell; does not wait.
bool write_record(const void* body, uint32_t len);

}  // namespace vgpu::shim::raw
