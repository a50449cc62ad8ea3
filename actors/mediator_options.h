// Every key of the mediator's [mediator] config section, with its default.
// `vgpu-mediator --help` lists them; config/vgpu-mediator.conf documents them.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace vgpu {

struct mediator_options {
  std::string socket_path = "/run/vgpu/local.sock";
  std::string socket_group;  // group given every socket (e.g. kvm for libvirt's QEMU); empty: unchanged
  std::string socket_mode;   // octal mode of every socket, e.g. "0660"; empty: what the umask leaves
  std::string executor = "auto";  // auto | cuda | reference
  int workers_per_gpu = 1;
  std::string log_level = "info";
  std::string log_file;  // empty: stderr
  size_t region_size = 64u << 20;
  size_t ring_size = 64u << 10;
  int spin_us = 50;
  int reference_devices = 1;
  size_t reference_memory_mb = 16384;
  std::string module_dir;  // empty: <dir of the binary>/../lib
  int stats_interval_s = 10;
  // GPU memory all local (non-VM) processes may hold together; 0: no limit.
  // Each VM's own limit is its [vm.<id>] memory-limit-mb.
  size_t local_memory_limit_mb = 0;
  // Scheduling weight of every local process's session (a VM's is its
  // [vm.<id>] weight); 1..100.
  int local_weight = 1;
  // Prometheus endpoint (host:port, loopback by default); empty = off.
  std::string metrics_listen = "127.0.0.1:9464";
  // vgpuctl's UNIX socket; empty = control.sock next to socket-path
  // (/run/vgpu/control.sock without one); "off" = none.
  std::string control_socket;
  // GPUs local processes may use (device ordinals); empty: all. VMs: [vm.<id>] gpus.
  std::vector<int64_t> local_gpus;
};

}  // namespace vgpu
