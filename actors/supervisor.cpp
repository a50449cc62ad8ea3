// The supervisor: spawns the GPU worker actors, places each new session on the
// worker with the fewest sessions (ties: the lowest index, i.e. round robin
// over an idle set), and logs the operators' "Total processed" figure.
#include <algorithm>
#include <chrono>
#include <unordered_map>

#include <spdlog/spdlog.h>

#include "actors/actor_types.h"

namespace vgpu {

namespace {
struct supervisor_state {
  std::vector<std::shared_ptr<worker_loop>> loops;
  std::vector<gpu_worker_actor> workers;
  std::unordered_map<uint64_t, session_actor> sessions;  // keeps each session actor alive until it ends
  uint64_t last_logged_total = 0;
  std::chrono::seconds interval{10};
  gpu_access gpus;          // which GPUs each VM / the local processes may use
  int workers_per_gpu = 1;  // loops are gpu0/w0.., gpu1/w0..: loop i serves GPU i / workers_per_gpu
};

uint64_t total_processed(const supervisor_state& st) {
  uint64_t n = 0;
  for (auto& l : st.loops) n += l->processed();
  return n;
}

supervisor_actor::behavior_type supervisor(supervisor_actor::stateful_pointer<supervisor_state> self,
                                           std::vector<std::shared_ptr<worker_loop>> loops,
                                           mediator_options opts, gpu_access gpus) {
  auto& init = self->state;
  init.loops = std::move(loops);
  for (auto& l : init.loops) {
    auto w = spawn_gpu_worker(self->system(), l);
    self->link_to(w);
    init.workers.push_back(w);
  }
  init.gpus = std::move(gpus);
  init.workers_per_gpu = opts.workers_per_gpu > 0 ? opts.workers_per_gpu : 1;
  init.interval = std::chrono::seconds(opts.stats_interval_s > 0 ? opts.stats_interval_s : 10);
  self->delayed_send(self, init.interval, tick_atom::value);
  return {
      [self](connected_atom, session_ptr s) {
        auto& st = self->state;
        // Least loaded among the workers of the GPUs the VM may use (all: every worker).
        const std::vector<int>& allowed = st.gpus.allowed(s->vm_id, s->is_vm);
        auto ok = [&](size_t i) {
          const int gpu = static_cast<int>(i) / st.workers_per_gpu;
          return allowed.empty() || std::find(allowed.begin(), allowed.end(), gpu) != allowed.end();
        };
        size_t best = st.loops.size();
        for (size_t i = 0; i < st.loops.size(); ++i)
          if (ok(i) && (best == st.loops.size() || st.loops[i]->sessions() < st.loops[best]->sessions())) best = i;
        if (best == st.loops.size()) best = 0;  // unreachable: the lists are checked against the devices at startup
        spdlog::info("[vgpu] vm_id={}: session {} placed on worker {}", s->vm_id, s->id, st.loops[best]->name());
        const uint64_t id = s->id;
        st.sessions.emplace(id, spawn_session(self->system(), std::move(s), st.workers[best], self));
      },
      [self](done_atom, uint64_t id, const std::string& vm_id, const std::string& reason, uint64_t processed,
             uint64_t failed, uint64_t data_bytes) {
        self->state.sessions.erase(id);
        spdlog::info("[vgpu] vm_id={}: session {} ended ({}): {} calls processed ({} failed, {} MiB of data). "
                     "Total processed: {}",
                     vm_id, id, reason, processed, failed, data_bytes >> 20, total_processed(self->state));
      },
      [self](tick_atom) {
        auto& st = self->state;
        const uint64_t total = total_processed(st);
        if (total != st.last_logged_total) {
          size_t sessions = 0;
          for (auto& l : st.loops) sessions += l->sessions();
          spdlog::info("[vgpu] Total processed: {} ({} active session(s))", total, sessions);
          st.last_logged_total = total;
        }
        self->delayed_send(self, st.interval, tick_atom::value);
      },
  };
}
}  // namespace

supervisor_actor spawn_supervisor(caf::actor_system& sys, std::vector<std::shared_ptr<worker_loop>> loops,
                                  const mediator_options& opts, const gpu_access& gpus) {
  return sys.spawn(supervisor, std::move(loops), opts, gpus);
}

}  // namespace vgpu
