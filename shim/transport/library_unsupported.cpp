#include "shim/transport/library_unsupported.h"

#include <mutex>
#include <set>
#include <string>

#include "shim/transport/guest_log.h"

namespace vgpu::shim {

int library_not_supported(const char* library, const char* name, int status) {
  static std::mutex m;
  static auto* seen = new std::set<std::string>;  // never destroyed: stubs may run at exit
  std::lock_guard<std::mutex> lock(m);
  if (seen->insert(name).second)
    VGPU_GLOG(warn, "[cuda-transport] %s (%s) is not supported by vgpu yet: returning status %d", name, library,
              status);
  return status;
}

}  // namespace vgpu::shim
