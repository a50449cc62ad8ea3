// vgpuctl doctor: the field notes' host checklist, automated. Each hop from
// the mediator to the GPU is checked from the mediator's own figures, shown
// ✓ or ✗ with its evidence, and a ✗ comes with the likely fix.
//
//   mediator reachable -> VM socket up -> device (QEMU) connected -> doorbells
//   seen -> calls received and processed -> executor on a real GPU -> GPU memory moved
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>

#include "protocol/control_protocol.h"
#include "tools/vgpuctl/commands.h"
#include "tools/vgpuctl/control_client.h"
#include "tools/vgpuctl/format.h"

namespace vgpuctl {

namespace {

struct report {
  int failed = 0;
  std::string first_failed;

  void hop(bool ok, const std::string& target, const std::string& name, const std::string& evidence,
           const std::string& fix = "") {
    std::printf("  %s %s%s\n", ok ? "\u2713" : "\u2717", pad(name, 30).c_str(), evidence.c_str());
    if (!ok) {
      if (!fix.empty()) std::printf("      fix: %s\n", fix.c_str());
      if (failed++ == 0) first_failed = name + (target.empty() ? "" : " (" + target + ")");
    }
  }
  void skipped(const std::string& name) { std::printf("  - %snot checked: an earlier hop failed\n", pad(name, 30).c_str()); }
};

// Running processes whose name is vgpu-mediator (pid list), from /proc.
std::vector<int> mediator_pids() {
  std::vector<int> pids;
  DIR* d = opendir("/proc");
  if (!d) return pids;
  while (dirent* e = readdir(d)) {
    const int pid = std::atoi(e->d_name);
    if (pid <= 0) continue;
    std::ifstream comm(std::string("/proc/") + e->d_name + "/comm");
    std::string name;
    std::getline(comm, name);
    if (name == "vgpu-mediator") pids.push_back(pid);
  }
  closedir(d);
  return pids;
}

std::string file_state(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) return std::string("missing (") + std::strerror(errno) + ")";
  return S_ISSOCK(st.st_mode) ? "present (a socket)" : "present (not a socket!)";
}

// The mediator is down: say so, and what is there instead.
int mediator_down(const global_options& g, const std::string& why) {
  report r;
  std::printf("vgpuctl doctor: the vgpu mediator, asked on %s\n", g.socket.c_str());
  const auto pids = mediator_pids();
  std::string evidence = why + "; socket file " + file_state(g.socket) + "; ";
  if (pids.empty()) {
    evidence += "no vgpu-mediator process is running";
  } else {
    evidence += "vgpu-mediator running as pid";
    for (int p : pids) evidence += " " + std::to_string(p);
  }
  std::string fix;
  if (pids.empty())
    fix = "start the mediator (vgpu-mediator --config-file=/etc/vgpu/vgpu-mediator.conf, or its systemd unit), then "
          "start the VMs: QEMU connects only when it starts";
  else
    fix = "the mediator runs but does not answer here: give vgpuctl its control socket (--socket PATH = the "
          "mediator's mediator.control-socket, by default control.sock beside its socket-path), and check the "
          "permissions of that socket";
  r.hop(false, "", "mediator reachable", evidence, fix);
  std::printf("\ndoctor: 1 hop failed; the first: mediator reachable\n");
  return 1;
}

struct target {
  std::string name;          // "vm 111", "local guests", "vm local-4711"
  bool configured_vm = false;
  std::string socket;        // the socket its guests connect to
  bool socket_listening = false;
  std::vector<record> vms;   // the vm records it covers
};

void check_target(report& r, const target& t, const record& med) {
  const uint64_t now = med.num("now");
  std::printf("\n%s\n", t.name.c_str());
  uint64_t sessions_now = 0, sessions_total = 0, calls = 0, errors = 0, doorbells = 0, peak = 0, used = 0,
           last_call = 0, connected_at = 0;
  for (const auto& v : t.vms) {
    sessions_now += v.num("sessions");
    sessions_total += v.num("sessions_total");
    calls += v.num("calls");
    errors += v.num("errors");
    doorbells += v.num("doorbells");
    peak = std::max<uint64_t>(peak, v.num("memory_peak"));
    used += v.num("memory_used");
    last_call = std::max<uint64_t>(last_call, v.num("last_call"));
    connected_at = std::max<uint64_t>(connected_at, v.num("connected_at"));
  }
  const char* who = t.configured_vm ? "QEMU" : "a local guest process";
  // 2. the socket its guests connect to
  bool ok = t.socket_listening;
  r.hop(ok, t.name, "VM socket up",
        ok ? "listening on " + t.socket
           : t.socket.empty() ? "the mediator has no socket for these guests" : t.socket + ": the socket file is gone",
        t.configured_vm ? "restart the mediator so it listens on " + t.socket + " again (then restart the VM)"
                        : "set mediator.socket-path and restart the mediator");
  // 3. the device connected
  const bool connected = ok && sessions_total > 0;
  if (!ok) {
    r.skipped("device connected");
  } else {
    r.hop(connected, t.name, t.configured_vm ? "device (QEMU) connected" : "guest process connected",
          connected ? std::to_string(sessions_now) + " connection(s) now, " + std::to_string(sessions_total) +
                          " since start, last " + age(connected_at, now)
                    : std::string("no ") + who + " has connected to " + t.socket + " since the mediator started (" +
                          age(med.num("started"), now) + ")",
          t.configured_vm
              ? "start the VM with -chardev socket,path=" + t.socket +
                    ",id=vgpu0 -device ivshmem-doorbell,chardev=vgpu0,vectors=2 (libvirt: <shmem> with <server path='" +
                    t.socket + "'/>); QEMU connects only when it starts: restart a VM started before the mediator"
              : "run the program with VGPU_SOCKET=" + t.socket +
                    " and vgpu's libcudart.so.13 first on LD_LIBRARY_PATH (ldd ./prog | grep cudart)");
  }
  // 4-5. doorbells and calls
  if (!connected) {
    r.skipped("doorbells seen");
    r.skipped("calls received and processed");
  } else {
    const bool rang = doorbells > 0 || calls > 0;
    r.hop(rang, t.name, "doorbells seen",
          doorbells ? std::to_string(doorbells) + " doorbell ring(s)"
          : calls   ? "no doorbell rang: the worker was polling its rings when the calls came (no ring needed)"
                    : "no doorbell and no request from the guest",
          "in the guest: is vgpu's libcudart.so.13 loaded (ldd ./prog | grep cudart)? VGPU_LOG_LEVEL=debug prints "
          "[cuda-transport] RINGING DOORBELL; in a VM, tools/guest/vgpu-guest-setup.sh must have run (memory decode, "
          "resource0/resource2 permissions)");
    r.hop(calls > 0, t.name, "calls received and processed",
          calls ? std::to_string(calls) + " call(s) processed, " + std::to_string(errors) + " failed, last " +
                      age(last_call, now)
                : "no call arrived",
          "the guest connected but made no CUDA call: does the program reach its first CUDA call? "
          "VGPU_LOG_LEVEL=debug in the guest shows each [cuda-transport] SENDING");
  }
  // 6. the executor (the mediator's, the same for every VM)
  const bool gpu = med.num("gpu") != 0;
  r.hop(gpu, t.name, "executor on a real GPU",
        med.get("executor") + ": " + med.get("describe"),
        "the mediator found no usable NVIDIA GPU and runs calls on the CPU: install NVIDIA's driver on the host, "
        "check that libvgpu-executor-cuda.so is in mediator.module-dir, and start with --mediator.executor=cuda to "
        "make the mediator say why the cuda executor does not start");
  // 7. device memory
  if (!connected) {
    r.skipped("GPU memory moved");
  } else {
    r.hop(peak > 0, t.name, "GPU memory moved",
          peak ? "peak " + bytes(peak) + " held by one session, " + bytes(used) + " now (executor total " +
                     bytes(med.num("memory_used")) + ")"
               : "no device memory was ever allocated by these guests",
          "the program has not allocated device memory (cudaMalloc) yet; if it tried, its calls failed: look at "
          "vgpuctl trace --vm ID");
  }
}

}  // namespace

int cmd_doctor(const global_options& g, const args& a) {
  std::string only;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] == "--help" || a[i] == "-h") {
      std::printf(
          "usage: vgpuctl doctor [--vm ID]\n\n"
          "Checks each hop between a guest and the GPU, from the mediator's own figures,\n"
          "and prints each as \u2713 or \u2717 with its evidence; a \u2717 comes with the likely fix:\n"
          "  mediator reachable        the control socket answers (if not: is the socket\n"
          "                            file there, is a vgpu-mediator process running?)\n"
          "  VM socket up              the VM's [vm.<id>] socket (or the local socket) listens\n"
          "  device (QEMU) connected   QEMU (or a local guest process) has connected\n"
          "  doorbells seen            the guest rang the doorbell (or the worker was polling)\n"
          "  calls received and processed\n"
          "  executor on a real GPU    not the CPU reference executor\n"
          "  GPU memory moved          the guests allocated device memory\n"
          "Without --vm: every configured VM and the local guests. ID: a [vm.<id>] id,\n"
          "local-<pid> for one local process, or 'local' for all of them.\n"
          "Exit status 0 when every hop is \u2713, 1 otherwise; the last line names the\n"
          "first hop that failed.\n");
      return 0;
    }
    if (a[i] == "--vm" && i + 1 < a.size()) {
      only = a[++i];
    } else if (a[i].rfind("--vm=", 0) == 0) {
      only = a[i].substr(5);
    } else {
      std::fprintf(stderr, "vgpuctl doctor: unexpected argument '%s' (see --help)\n", a[i].c_str());
      return 2;
    }
  }
  std::vector<record> recs;
  std::string why;
  if (!query(g.socket, "status", &recs, &why)) return mediator_down(g, why);

  const record med = first(recs, "mediator");
  report r;
  std::printf("vgpuctl doctor: the vgpu mediator, asked on %s\n", g.socket.c_str());
  r.hop(true, "", "mediator reachable",
        "pid " + med.get("pid") + ", vgpu " + med.get("version") + ", up " +
            uptime(med.num("now") - std::min<uint64_t>(med.num("now"), med.num("started"))) + ", " +
            med.get("total_processed") + " calls processed in all");

  std::map<std::string, bool> listening;  // socket -> listening
  std::string local_socket;
  bool local_listening = false;
  for (const auto& e : of_kind(recs, "endpoint")) {
    listening[e.get("socket")] = e.num("listening") != 0;
    if (e.get("vm").empty()) {
      local_socket = e.get("socket");
      local_listening = e.num("listening") != 0;
    }
  }
  std::vector<target> targets;
  target local{"local guests (socket " + (local_socket.empty() ? std::string("off") : local_socket) + ")", false,
               local_socket, local_listening, {}};
  bool found = only.empty();
  for (const auto& v : of_kind(recs, "vm")) {
    const std::string id = v.get("id");
    if (v.num("configured")) {
      if (!only.empty() && only != id) continue;
      found = true;
      targets.push_back(target{"vm " + id, true, v.get("socket"), listening[v.get("socket")], {v}});
    } else if (only.empty() || only == "local" || only == id) {
      found = true;
      local.vms.push_back(v);
      if (only == id) local.name = "vm " + id + " (a local process on " + local_socket + ")";
    }
  }
  if (!found) {
    std::printf("\nvm %s\n", only.c_str());
    r.hop(false, only, "VM socket up",
          "the mediator serves no VM '" + only + "' and no guest of that name has connected",
          "add a [vm." + only + "] section (socket, region-size, channels) to the mediator's configuration and "
          "restart it; `vgpuctl status` lists what it serves");
  }
  // The local socket is a target when asked for, or when guests use it, or when no VM is configured.
  const bool any_vm = std::any_of(targets.begin(), targets.end(), [](const target& t) { return t.configured_vm; });
  if (found && (!local.vms.empty() || only == "local" || (only.empty() && !any_vm && !local_socket.empty())))
    targets.push_back(local);
  for (const auto& t : targets) check_target(r, t, med);
  if (r.failed == 0)
    std::printf("\ndoctor: every hop \u2713\n");
  else
    std::printf("\ndoctor: %d hop(s) failed; the first: %s\n", r.failed, r.first_failed.c_str());
  return r.failed ? 1 : 0;
}

}  // namespace vgpuctl
