#include "actors/listener.h"

#include <poll.h>

#include <spdlog/spdlog.h>

namespace vgpu {

listener::listener(std::vector<endpoint> endpoints, on_session cb)
    : endpoints_(std::move(endpoints)), cb_(std::move(cb)) {
  thread_ = std::thread([this] { run(); });
}

listener::~listener() {
  stop_.store(true);
  thread_.join();
}

void listener::run() {
  std::vector<pollfd> fds;
  for (auto& ep : endpoints_) fds.push_back(pollfd{ep.server->fd(), POLLIN, 0});
  while (!stop_.load()) {
    for (auto& p : fds) p.revents = 0;
    if (poll(fds.data(), fds.size(), 100) <= 0) continue;
    for (size_t i = 0; i < fds.size(); ++i) {
      if (!(fds[i].revents & POLLIN)) continue;
      stub::unique_fd sock = endpoints_[i].server->accept_peer(0);
      if (!sock) continue;
      if (auto s = admit(endpoints_[i], std::move(sock))) cb_(std::move(s));
    }
  }
}

std::shared_ptr<host_session> listener::admit(endpoint& ep, stub::unique_fd sock) {
  std::string why;
  const uint64_t id = next_id_++;
  if (ep.is_vm && ep.busy->load()) {
    // QEMU never shares its server; a second client is a second VM on the same socket.
    spdlog::error("[vgpu] vm_id={}: refusing a second connection on {}: the VM is already connected", ep.vm_id,
                  ep.server->path());
    return nullptr;
  }
  // A local guest process gets a region of its own with one channel, and the
  // host wakes it through its eventfd when it sleeps. A VM's region has many
  // channels; its guest cannot take interrupts without a driver, so it polls.
  const uint64_t features = ep.is_vm ? uint64_t{0} : uint64_t{protocol::kFeatureHostWakeEventfd};
  const std::string name = ep.is_vm ? "vgpu-vm-" + ep.vm_id : "vgpu-local-" + std::to_string(id);
  auto link = stub::make_peer_link(std::move(sock), name, ep.region_size, ep.channels, ep.ring_size, features, &why);
  if (!link) {
    spdlog::error("[vgpu] refusing a connection on {}: {}", ep.server->path(), why);
    return nullptr;
  }
  if (!stub::serve_handshake(*link, &why)) {
    spdlog::warn("[vgpu] handshake with pid {} on {} failed: {}", link->pid, ep.server->path(), why);
    return nullptr;
  }
  auto s = std::make_shared<host_session>();
  s->id = id;
  s->is_vm = ep.is_vm;
  s->weight = ep.weight;
  s->vm_id = ep.is_vm ? ep.vm_id : "local-" + std::to_string(link->pid);
  if (ep.is_vm) {
    ep.busy->store(true);
    s->endpoint_busy = ep.busy;
  }
  const auto& layout = link->region->layout();
  for (uint32_t i = 0; i < layout.channel_count; ++i)
    s->channels.emplace_back(stub::host_channel(link->region->base(), layout, i, link->guest_vectors[0].get()),
                             std::make_shared<channel_notifier>(link->region, i, link->guest_vectors[1].get()));
  spdlog::info("[vgpu] vm_id={}: [CONNECTION] {} connected on {} (pid {}, uid {}): session {}, region {} MiB, {} channel(s)",
               s->vm_id, ep.is_vm ? "QEMU" : "local process", ep.server->path(), link->pid, link->uid, id,
               layout.region_bytes >> 20, layout.channel_count);
  s->link = std::move(link);
  return s;
}

}  // namespace vgpu
