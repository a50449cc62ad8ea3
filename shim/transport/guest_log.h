// The shim's own logging: plain stderr, no spdlog in a guest program's process.
// Level from VGPU_LOG_LEVEL (error|warn|info|debug; default warn). A disabled
// level costs one integer compare.
#pragma once

namespace vgpu::shim {

enum class log_level { error = 0, warn = 1, info = 2, debug = 3 };

bool log_enabled(log_level l);
void log_line(log_level l, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

}  // namespace vgpu::shim

#define VGPU_GLOG(level, ...)                                        \
  do {                                                               \
    if (::vgpu::shim::log_enabled(::vgpu::shim::log_level::level))   \
      ::vgpu::shim::log_line(::vgpu::shim::log_level::level, __VA_ARGS__); \
  } while (0)
