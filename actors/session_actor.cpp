// One actor per guest connection. It owns the session (its link, channels and
// executor sessions, i.e. the guest's CUDA context, memory and streams),
// attaches it to a GPU worker, and when the worker reports the end (hang-up,
// protocol violation, shutdown) reports to the supervisor and quits.
#include <spdlog/spdlog.h>

#include "actors/actor_types.h"

namespace vgpu {

namespace {
struct session_state {
  session_ptr session;
};

session_actor::behavior_type session(session_actor::stateful_pointer<session_state> self, session_ptr s,
                                     gpu_worker_actor worker, supervisor_actor supervisor) {
  self->state.session = s;
  // The worker thread calls this once; a weak reference keeps the session
  // from owning its own actor.
  auto weak = caf::actor_cast<caf::weak_actor_ptr>(self);
  s->on_end = [weak](const std::string& reason) {
    if (auto strong = caf::actor_cast<caf::strong_actor_ptr>(weak))
      caf::anon_send(caf::actor_cast<session_actor>(strong), ended_atom::value, reason);
  };
  self->send(worker, attach_atom::value, s);
  return {
      [self, supervisor](ended_atom, const std::string& reason) {
        auto& st = self->state.session;
        self->send(supervisor, done_atom::value, st->id, st->vm_id, reason,
                   st->processed.load(std::memory_order_relaxed), st->errors.load(std::memory_order_relaxed),
                   st->data_bytes.load(std::memory_order_relaxed));
        self->state.session.reset();
        self->quit();
      },
  };
}
}  // namespace

session_actor spawn_session(caf::actor_system& sys, session_ptr s, gpu_worker_actor worker,
                            supervisor_actor supervisor) {
  return sys.spawn(session, std::move(s), std::move(worker), std::move(supervisor));
}

}  // namespace vgpu
