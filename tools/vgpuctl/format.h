// Figures as operators read them: sizes, durations, ages.
#pragma once

#include <cstdint>
#include <string>

namespace vgpuctl {

std::string bytes(uint64_t b);               // "512 MiB", "1.5 GiB", "0 B"
std::string duration_ns(uint64_t ns);        // "850 ns", "12.3 us", "4.1 ms", "2.5 s"
std::string age(uint64_t then_ns, uint64_t now_ns);  // "3s ago", "2m05s ago", "never"
std::string clock_time(uint64_t wall_ns);    // "14:03:27.512" (local time)
std::string uptime(uint64_t ns);             // "1h02m", "3m12s"
std::string pad(const std::string& s, size_t width);

}  // namespace vgpuctl
