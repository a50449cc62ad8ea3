#include "actors/listener.h"

#include <spdlog/spdlog.h>

namespace vgpu {

listener::listener(std::unique_ptr<stub::ivshmem_server> server, const mediator_options& opts, on_session cb)
    : server_(std::move(server)), opts_(opts), cb_(std::move(cb)) {
  thread_ = std::thread([this] { run(); });
}

listener::~listener() {
  stop_.store(true);
  thread_.join();
}

void listener::run() {
  while (!stop_.load()) {
    stub::unique_fd sock = server_->accept_peer(100);
    if (!sock) continue;
    if (auto s = admit(std::move(sock))) cb_(std::move(s));
  }
}

std::shared_ptr<host_session> listener::admit(stub::unique_fd sock) {
  std::string why;
  const uint64_t id = next_id_++;
  // A local guest process gets a region of its own with one channel; the host
  // wakes it through its eventfd when it sleeps.
  auto link = stub::make_peer_link(std::move(sock), "vgpu-local-" + std::to_string(id), opts_.region_size, 1,
                                   opts_.ring_size, protocol::kFeatureHostWakeEventfd, &why);
  if (!link) {
    spdlog::error("[vgpu] refusing a connection on {}: {}", server_->path(), why);
    return nullptr;
  }
  if (!stub::serve_handshake(*link, &why)) {
    spdlog::warn("[vgpu] handshake with pid {} failed: {}", link->pid, why);
    return nullptr;
  }
  auto s = std::make_shared<host_session>();
  s->id = id;
  s->vm_id = "local-" + std::to_string(link->pid);
  const auto& layout = link->region->layout();
  for (uint32_t i = 0; i < layout.channel_count; ++i)
    s->channels.emplace_back(stub::host_channel(link->region->base(), layout, i, link->guest_vectors[0].get()),
                             std::make_shared<channel_notifier>(link->region, i, link->guest_vectors[1].get()));
  spdlog::info("[vgpu] vm_id={}: [CONNECTION] new connection on {} (pid {}, uid {}): session {}, region {} MiB, {} channel(s)",
               s->vm_id, server_->path(), link->pid, link->uid, id, layout.region_bytes >> 20, layout.channel_count);
  s->link = std::move(link);
  return s;
}

}  // namespace vgpu
