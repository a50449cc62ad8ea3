// The actor face of a GPU worker: attach and detach arrive as messages; the
// calls themselves are served by its worker_loop thread.
#include "actors/actor_types.h"

namespace vgpu {

namespace {
struct worker_state {
  std::shared_ptr<worker_loop> loop;
};

gpu_worker_actor::behavior_type gpu_worker(gpu_worker_actor::stateful_pointer<worker_state> self,
                                           std::shared_ptr<worker_loop> loop) {
  self->state.loop = std::move(loop);
  return {
      [self](attach_atom, session_ptr s) { self->state.loop->attach(std::move(s)); },
      [self](detach_atom, uint64_t id, const std::string& reason) { self->state.loop->detach(id, reason); },
  };
}
}  // namespace

gpu_worker_actor spawn_gpu_worker(caf::actor_system& sys, std::shared_ptr<worker_loop> loop) {
  return sys.spawn(gpu_worker, std::move(loop));
}

}  // namespace vgpu
