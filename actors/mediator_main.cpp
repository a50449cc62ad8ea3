// vgpu-mediator: reads the configuration, picks the executor, starts the GPU
// worker threads and the actor system, listens on the socket, and runs until
// SIGINT or SIGTERM.
#include <signal.h>
#include <grp.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include <spdlog/sinks/basic_file_sink.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include "actors/actor_types.h"
#include "actors/control/control_server.h"
#include "protocol/control_protocol.h"
#include "actors/executor/executor.h"
#include "actors/listener.h"
#include "actors/memory_limits.h"
#include "actors/stats/metrics_exporter.h"
#include "actors/stats/stats_registry.h"
#include "actors/vm_config.h"
#include "actors/gpu_access.h"
#include "protocol/region_layout.h"

namespace vgpu {
namespace {

struct mediator_config : caf::actor_system_config {
  mediator_options o;
  mediator_config() {
    opt_group{custom_options_, "mediator"}
        .add(o.socket_path, "socket-path", "UNIX socket local guest processes connect to (empty: none); VMs: [vm.<id>] sections")
        .add(o.socket_group, "socket-group", "group of every socket (e.g. kvm, so libvirt's QEMU may connect)")
        .add(o.socket_mode, "socket-mode", "octal mode of every socket, e.g. \"0660\" (default: the umask's)")
        .add(o.executor, "executor", "auto | cuda | reference (auto: cuda when a GPU is usable)")
        .add(o.workers_per_gpu, "workers-per-gpu", "GPU worker threads per device")
        .add(o.log_level, "log-level", "trace | debug | info | warn | error (debug: one line per call)")
        .add(o.log_file, "log-file", "log to this file instead of stderr")
        .add(o.region_size, "region-size", "bytes of shared region per guest (power of two)")
        .add(o.ring_size, "ring-size", "bytes per request/response ring (power of two)")
        .add(o.spin_us, "spin-us", "microseconds a worker spins on its rings before blocking")
        .add(o.reference_devices, "reference-devices", "devices the reference executor poses as")
        .add(o.reference_memory_mb, "reference-memory-mb", "memory the reference executor reports")
        .add(o.module_dir, "module-dir", "folder of libvgpu-executor-cuda.so (default: <binary>/../lib)")
        .add(o.stats_interval_s, "stats-interval-s", "seconds between 'Total processed' lines")
        .add(o.local_weight, "local-weight",
             "scheduling weight of each local process's session (1..100; a VM's is vm.<id>.weight)")
        .add(o.local_memory_limit_mb, "local-memory-limit-mb",
             "GPU memory (MiB) all local processes may hold together, 0: no limit; "
             "a VM's is vm.<id>.memory-limit-mb")
        .add(o.metrics_listen, "metrics-listen", "Prometheus endpoint host:port (empty: off)")
        .add(o.local_gpus, "local-gpus", "GPUs (device ordinals, e.g. [1]) local processes may use; default: all")
        .add(o.control_socket, "control-socket", "vgpuctl's UNIX socket (empty: control.sock beside socket-path; \"off\": none)");
  }
};

bool setup_logging(const mediator_options& o) {
  try {
    auto logger = o.log_file.empty() ? spdlog::stderr_color_mt("vgpu")
                                     : spdlog::basic_logger_mt("vgpu", o.log_file);
    spdlog::set_default_logger(logger);
  } catch (const spdlog::spdlog_ex& e) {
    std::fprintf(stderr, "vgpu-mediator: cannot open log: %s\n", e.what());
    return false;
  }
  spdlog::set_pattern("[%Y-%m-%d %H:%M:%S.%e] [%l] %v");
  const auto level = spdlog::level::from_str(o.log_level);
  if (level == spdlog::level::off && o.log_level != "off") {
    std::fprintf(stderr, "vgpu-mediator: unknown log-level '%s'\n", o.log_level.c_str());
    return false;
  }
  spdlog::set_level(level);
  spdlog::flush_on(spdlog::level::info);
  return true;
}

std::string default_module_dir() {
  std::error_code ec;
  auto exe = std::filesystem::read_symlink("/proc/self/exe", ec);
  return ec ? std::string("lib") : (exe.parent_path().parent_path() / "lib").string();
}

std::unique_ptr<host::executor> choose_executor(const mediator_options& o) {
  host::reference_options ref;
  ref.device_count = o.reference_devices;
  ref.memory_bytes = static_cast<uint64_t>(o.reference_memory_mb) << 20;
  if (o.executor == "reference") return host::make_reference_executor(ref);
  if (o.executor != "cuda" && o.executor != "auto") {
    spdlog::error("[vgpu] unknown executor '{}' (auto | cuda | reference)", o.executor);
    return nullptr;
  }
  std::string why;
  const std::string dir = o.module_dir.empty() ? default_module_dir() : o.module_dir;
  if (auto e = host::load_cuda_executor(dir, &why)) return e;
  if (o.executor == "cuda") {
    spdlog::error("[cuda-executor] cannot start the cuda executor: {}", why);
    return nullptr;
  }
  spdlog::warn("[vgpu] no usable GPU ({}): falling back to the reference executor", why);
  return host::make_reference_executor(ref);
}

// Where vgpuctl finds the mediator: control-socket, or control.sock beside the
// local socket (without one, beside the first VM's socket: the same folder,
// /run/vgpu, in the default layout).
std::string control_path(const mediator_options& o, const std::vector<vm_config>& vms) {
  if (o.control_socket == "off") return "";
  if (!o.control_socket.empty()) return o.control_socket;
  std::string beside = o.socket_path;
  if (beside.empty()) beside = vms.empty() ? std::string(control::kDefaultSocket) : vms.front().socket_path;
  return (std::filesystem::path(beside).parent_path() / "control.sock").string();
}

bool check_options(const mediator_options& o) {
  if (!protocol::is_power_of_two(o.region_size) || !protocol::is_power_of_two(o.ring_size)) {
    spdlog::error("[vgpu] region-size and ring-size must be powers of two");
    return false;
  }
  if (o.workers_per_gpu < 1 || o.workers_per_gpu > 64) {
    spdlog::error("[vgpu] workers-per-gpu must be between 1 and 64");
    return false;
  }
  return true;
}

int run(mediator_config& cfg) {
  const mediator_options& o = cfg.o;
  if (!setup_logging(o) || !check_options(o)) return 2;
  auto exec = choose_executor(o);
  if (!exec) return 1;
  if (exec->is_gpu()) {
    spdlog::info("[cuda-executor] {}", exec->describe());
  } else {
    spdlog::warn("[vgpu] *** {} ***", exec->describe());
  }
  std::vector<vm_config> vms;
  std::string why;
  if (!read_vm_configs(cfg, &vms, &why)) {
    spdlog::error("[vgpu] config: {}", why);
    return 2;
  }
  gpu_access gpus;
  if (!read_gpu_access(cfg, exec->device_count(), &gpus, &why)) {
    spdlog::error("[vgpu] config: {}", why);
    return 2;
  }
  auto join = [](const std::vector<int>& l) {
    std::string s;
    for (int d : l) s += (s.empty() ? "" : ",") + std::to_string(d);
    return s;
  };
  for (const auto& [id, list] : gpus.vms) spdlog::info("[vgpu] vm_id={}: GPUs {} only", id, join(list));
  if (!gpus.local.empty()) spdlog::info("[vgpu] local processes: GPUs {} only", join(gpus.local));
  if (o.local_memory_limit_mb > (size_t{1} << 40)) {
    spdlog::error("[vgpu] config: local-memory-limit-mb is too large");
    return 2;
  }
  // Every session gets its VM's memory budget from here on (memory_limits.h).
  exec = make_limited_executor(
      std::move(exec), std::make_shared<memory_limits>(vms, static_cast<uint64_t>(o.local_memory_limit_mb) << 20));
  if (o.local_memory_limit_mb != 0 && !o.socket_path.empty()) {
    spdlog::info("[vgpu] local processes: memory limit {} MiB (all together)", o.local_memory_limit_mb);
  }
  // Every socket listens before any QEMU starts (QEMU never reconnects).
  std::vector<endpoint> endpoints;
  // Who may connect: QEMU often runs as another user (libvirt-qemu, group kvm).
  auto set_access = [&](const std::string& path) {
    if (!o.socket_group.empty()) {
      const group* g = getgrnam(o.socket_group.c_str());
      if (!g || chown(path.c_str(), static_cast<uid_t>(-1), g->gr_gid) != 0) {
        spdlog::error("[vgpu] socket-group {}: {}", o.socket_group, g ? std::strerror(errno) : "no such group");
        return false;
      }
    }
    if (!o.socket_mode.empty()) {
      char* end = nullptr;
      const long mode = std::strtol(o.socket_mode.c_str(), &end, 8);
      if (*end != '\0' || mode < 0 || mode > 0777 || chmod(path.c_str(), static_cast<mode_t>(mode)) != 0) {
        spdlog::error("[vgpu] socket-mode '{}': an octal mode such as 0660 is needed", o.socket_mode);
        return false;
      }
    }
    return true;
  };
  auto open_endpoint = [&](const std::string& path) -> std::unique_ptr<stub::ivshmem_server> {
    const std::filesystem::path p(path);
    std::error_code ec;
    if (p.has_parent_path()) std::filesystem::create_directories(p.parent_path(), ec);
    auto server = stub::ivshmem_server::listen(path, &why);
    if (!server) {
      spdlog::error("[vgpu] {}", why);
      return server;
    }
    if (!set_access(path)) return nullptr;
    return server;
  };
  if (!o.socket_path.empty()) {
    endpoint local;
    if (!(local.server = open_endpoint(o.socket_path))) return 1;
    local.region_size = o.region_size;
    local.ring_size = o.ring_size;
    if (o.local_weight < 1 || o.local_weight > kMaxWeight) {
      spdlog::error("[vgpu] config: mediator.local-weight must be between 1 and {}", kMaxWeight);
      return 2;
    }
    local.weight = static_cast<uint32_t>(o.local_weight);
    endpoints.push_back(std::move(local));
  }
  for (const auto& vm : vms) {
    // Refuse a layout that cannot work now, not when QEMU connects (QEMU
    // would then wait forever for a handshake).
    protocol::region_header probe{};
    if (!protocol::make_layout(vm.region_size, vm.channels, o.ring_size, &probe, &why)) {
      spdlog::error("[vgpu] config: vm.{}: {}", vm.id, why);
      return 2;
    }
    endpoint ep;
    if (!(ep.server = open_endpoint(vm.socket_path))) return 1;
    ep.is_vm = true;
    ep.vm_id = vm.id;
    ep.region_size = vm.region_size;
    ep.channels = vm.channels;
    ep.ring_size = o.ring_size;
    ep.weight = vm.weight;
    spdlog::info("[vgpu] vm_id={}: waiting for QEMU on {} (region {} MiB, {} channels, weight {})", vm.id,
                 vm.socket_path, vm.region_size >> 20, vm.channels, vm.weight);
    if (vm.memory_limit_bytes != 0) {
      spdlog::info("[vgpu] vm_id={}: memory limit {} MiB (all its processes together)", vm.id,
                   vm.memory_limit_bytes >> 20);
    }
    endpoints.push_back(std::move(ep));
  }
  if (endpoints.empty()) {
    spdlog::error("[vgpu] nothing to serve: socket-path is empty and no [vm.<id>] section is configured");
    return 2;
  }

  // SIGINT/SIGTERM are taken by sigwait below: block them before any thread starts.
  sigset_t sigs;
  sigemptyset(&sigs);
  sigaddset(&sigs, SIGINT);
  sigaddset(&sigs, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

  // What vgpuctl and the metrics read: the data plane writes it lock-free.
  stats::registry reg;
  {
    host::executor* e = exec.get();
    reg.set_executor(stats::executor_info{exec->kind(), exec->describe(), exec->is_gpu(), exec->device_count(),
                                          [e] { return e->bytes_in_use(); }});
    std::vector<stats::endpoint_info> eps;
    if (!o.socket_path.empty()) eps.push_back(stats::endpoint_info{"", o.socket_path, false});
    for (const auto& vm : vms) eps.push_back(stats::endpoint_info{vm.id, vm.socket_path, true});
    reg.set_endpoints(std::move(eps));
  }

  std::vector<std::shared_ptr<worker_loop>> loops;
  for (int d = 0; d < exec->device_count(); ++d)
    for (int w = 0; w < o.workers_per_gpu; ++w) {
      const std::string name = "gpu" + std::to_string(d) + "/w" + std::to_string(w);
      worker_loop::options wo{name, o.spin_us, static_cast<uint32_t>(loops.size()), &reg.add_worker(name)};
      loops.push_back(std::make_shared<worker_loop>(*exec, wo));
    }

  // A metrics or control problem is logged, never a reason to refuse the guests.
  std::unique_ptr<stats::metrics_exporter> metrics;
  if (!o.metrics_listen.empty()) {
    metrics = stats::metrics_exporter::start(reg, o.metrics_listen, &why);
    if (metrics)
      spdlog::info("[vgpu] metrics: Prometheus endpoint on http://{}/metrics", metrics->address());
    else
      spdlog::error("[vgpu] metrics: {}: the mediator runs without metrics", why);
  }
  control::mediator_info info{VGPU_VERSION, o.socket_path, "",
                              metrics ? metrics->address() : std::string()};
  info.control_path = control_path(o, vms);
  std::unique_ptr<control::control_server> ctl;
  if (!info.control_path.empty()) {
    ctl = control::control_server::start(reg, info, &why);
    if (ctl && set_access(info.control_path))
      spdlog::info("[vgpu] control socket for vgpuctl: {}", info.control_path);
    else if (!ctl)
      spdlog::error("[vgpu] control socket: {}: vgpuctl cannot reach this mediator", why);
  }

  int status = 0;
  {
    caf::actor_system sys{cfg};
    auto sup = spawn_supervisor(sys, loops, o, gpus);
    {
      listener front(std::move(endpoints), [sup, &reg](session_ptr s) {
        s->stats = reg.open_session(s->id, s->vm_id, s->is_vm, s->link ? static_cast<int>(s->link->pid) : 0);
        caf::anon_send(sup, connected_atom::value, std::move(s));
      });
      spdlog::info("[vgpu] mediator ready: listening on {} and {} VM socket(s) ({} executor, {} GPU worker(s))",
                   o.socket_path.empty() ? "no local socket" : o.socket_path, vms.size(), exec->kind(), loops.size());
      int sig = 0;
      sigwait(&sigs, &sig);
      spdlog::info("[vgpu] {} received: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
    }
    // Workers end their sessions (freeing everything) while the actors still run.
    for (auto& l : loops) l->shutdown();
    caf::anon_send_exit(sup, caf::exit_reason::user_shutdown);
  }
  uint64_t total = 0;
  for (auto& l : loops) total += l->processed();
  spdlog::info("[vgpu] mediator stopped. Total processed: {} (executor bytes still allocated: {})", total,
               exec->bytes_in_use());
  return status;
}

}  // namespace
}  // namespace vgpu

int main(int argc, char** argv) {
  // CAF's --help shows only its global group; operators need every key.
  std::vector<std::string> args(argv + 1, argv + argc);
  for (auto& a : args)
    if (a == "--help" || a == "-h" || a == "-?") a = "--long-help";
  vgpu::mediator_config cfg;
  if (auto err = cfg.parse(args)) {
    std::fprintf(stderr, "vgpu-mediator: %s\n", cfg.render(err).c_str());
    return 2;
  }
  if (cfg.cli_helptext_printed) return 0;
  return vgpu::run(cfg);
}
