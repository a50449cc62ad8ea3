#include "shim/transport/guest_log.h"

#include <cstdarg>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace vgpu::shim {

namespace {
int level_from_env() {
  const char* v = std::getenv("VGPU_LOG_LEVEL");
  if (!v) return static_cast<int>(log_level::warn);
  if (!std::strcmp(v, "error")) return 0;
  if (!std::strcmp(v, "warn")) return 1;
  if (!std::strcmp(v, "info")) return 2;
  if (!std::strcmp(v, "debug") || !std::strcmp(v, "trace")) return 3;
  return static_cast<int>(log_level::warn);
}
const int g_level = level_from_env();
}  // namespace

bool log_enabled(log_level l) { return static_cast<int>(l) <= g_level; }

void log_line(log_level, const char* fmt, ...) {
  char buf[1024];
  va_list ap;
  va_start(ap, fmt);
  const int n = std::vsnprintf(buf, sizeof buf - 1, fmt, ap);
  va_end(ap);
  size_t len = n < 0 ? 0 : (static_cast<size_t>(n) < sizeof buf - 1 ? n : sizeof buf - 2);
  buf[len++] = '\n';
  // One write per line so lines of concurrent threads do not interleave.
  std::fwrite(buf, 1, len, stderr);
}

}  // namespace vgpu::shim
