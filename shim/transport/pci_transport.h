// The PCI transport: inside a VM, the vgpu-stub is QEMU's ivshmem-doorbell
// device (PCI 1af4:1110). The shim maps its registers (BAR0, resource0) and
// the shared region (BAR2, resource2) through sysfs, claims a channel, rings
// the Doorbell register, and polls the region for replies (no guest driver,
// so no interrupts: it spins briefly, then backs off).
#pragma once

#include <memory>
#include <string>

#include "shim/transport/transport.h"

namespace vgpu::shim {

// The sysfs folder of the first ivshmem device whose region carries vgpu's
// magic; empty when there is none (then the local socket is used).
std::string find_vgpu_pci_device();

std::unique_ptr<transport> connect_pci(const std::string& sysfs_dir, std::string* why);

}  // namespace vgpu::shim
