// The mediator's control socket (`mediator.control-socket`, default
// /run/vgpu/control.sock): how `vgpuctl` asks the running mediator what it
// serves. Operators' tools read this, never the logs.
//
// One request per connection. The client connects, writes one line and reads
// until the mediator closes the connection:
//
//   request  = command *( " " argument ) "\n"
//   commands:  "ping"               -> a header and "end"
//              "status"             -> everything below
//              "trace <vm-id> [N]"  -> the VM's last N calls (default 64), oldest first
//
//   reply    = "vgpu-control 1\n" *( record "\n" ) "end\n"
//   record   = kind *( " " key "=" value )
//   value    = percent-escaped: '%', ' ', '=', CR, LF and non-printable bytes as %XX
//   on error = "vgpu-control 1\n" "error message=<why>\n" "end\n"
//
// Records of "status" (times are Unix nanoseconds, 0 = never; sizes in bytes):
//   mediator  pid version started now executor gpu(0|1) devices describe
//             memory_used(executor, all sessions) total_processed socket control metrics
//   endpoint  vm(empty: the local socket) socket listening(0|1: the socket file is there)
//   worker    name sessions processed busy_ns queue(channels with work) waiting(replies waiting on the GPU)
//   vm        id configured(0|1: a [vm.<id>] section) socket sessions(now) sessions_total
//             connected_at(last connection) last_call calls errors bytes_in(from the guest)
//             bytes_out(to the guest) doorbells memory_used memory_peak memory_limit(0: none)
//             latency_sum_ns calls_per_s(over the last second)
//   session   id vm pid worker connected_at last_call calls errors bytes_in bytes_out doorbells memory_used
//   call      vm name calls errors                  (per VM and call name, non-zero only)
//   latency   vm le_us(upper bound; "inf") count     (per VM, non-cumulative buckets)
// Records of "trace":
//   trace     session channel seq name status(a cudaError_t) mode(sync|posted|deferred)
//             received(Unix ns: taken off the request ring) exec_ns(ring to executor done)
//             reply_ns(ring to reply written; 0: none) data(bytes)
//
// A client ignores record kinds and keys it does not know (newer mediators add them).
#pragma once

#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <vector>

namespace vgpu::control {

inline constexpr const char* kReplyHeader = "vgpu-control 1";
inline constexpr const char* kDefaultSocket = "/run/vgpu/control.sock";

inline std::string escape(const std::string& v) {
  std::string out;
  for (unsigned char ch : v) {
    if (ch == '%' || ch == ' ' || ch == '=' || ch < 0x21 || ch > 0x7e) {
      char buf[4];
      std::snprintf(buf, sizeof buf, "%%%02X", ch);
      out += buf;
    } else {
      out += static_cast<char>(ch);
    }
  }
  return out;
}

inline std::string unescape(const std::string& v) {
  std::string out;
  for (size_t i = 0; i < v.size(); ++i) {
    if (v[i] == '%' && i + 2 < v.size()) {
      out += static_cast<char>(std::strtol(v.substr(i + 1, 2).c_str(), nullptr, 16));
      i += 2;
    } else {
      out += v[i];
    }
  }
  return out;
}

// One line of a reply.
struct record {
  std::string kind;
  std::map<std::string, std::string> fields;

  const std::string& get(const std::string& key) const {
    static const std::string empty;
    auto it = fields.find(key);
    return it == fields.end() ? empty : it->second;
  }
  unsigned long long num(const std::string& key) const {
    const std::string& v = get(key);
    return v.empty() ? 0 : std::strtoull(v.c_str(), nullptr, 10);
  }
};

// Builds a record line: record_writer("vm").add("id", id).line()
class record_writer {
 public:
  explicit record_writer(const std::string& kind) : line_(kind) {}
  record_writer& add(const std::string& key, const std::string& value) {
    line_ += " " + key + "=" + escape(value);
    return *this;
  }
  template <typename T>
  record_writer& add(const std::string& key, T value) {
    return add(key, std::to_string(value));
  }
  record_writer& add(const std::string& key, const char* value) { return add(key, std::string(value)); }
  std::string line() const { return line_ + "\n"; }

 private:
  std::string line_;
};

inline record parse_record(const std::string& line) {
  record r;
  size_t pos = line.find(' ');
  r.kind = line.substr(0, pos);
  while (pos != std::string::npos) {
    const size_t start = pos + 1;
    pos = line.find(' ', start);
    const std::string kv = line.substr(start, pos == std::string::npos ? std::string::npos : pos - start);
    const size_t eq = kv.find('=');
    if (eq == std::string::npos) continue;
    r.fields[kv.substr(0, eq)] = unescape(kv.substr(eq + 1));
  }
  return r;
}

}  // namespace vgpu::control
