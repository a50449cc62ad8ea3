// A transport owns what connects this process to the mediator (socket, region
// mapping, eventfds) and the channel it claimed in the region.
#pragma once

#include <memory>

#include "shim/transport/guest_channel.h"

namespace vgpu::shim {

class transport {
 public:
  virtual ~transport() = default;
  virtual guest_channel& channel() = 0;
  virtual const char* name() const = 0;  // "local" or "pci"
};

}  // namespace vgpu::shim
