// The local transport: a process on the host (or in a container) connects to
// the mediator's UNIX socket and receives a region and eventfds through the
// same ivshmem server handshake that QEMU uses, so both paths share the host code.
#pragma once

#include <memory>
#include <string>

#include "shim/transport/transport.h"

namespace vgpu::shim {

std::unique_ptr<transport> connect_local(const std::string& socket_path, std::string* why);

}  // namespace vgpu::shim
