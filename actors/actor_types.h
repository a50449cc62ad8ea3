// The control plane's typed actor interfaces: what each actor accepts is its
// type. The data plane (worker_loop) never goes through these per call.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <caf/all.hpp>

#include "actors/gpu_access.h"
#include "actors/host_session.h"
#include "actors/mediator_options.h"
#include "actors/worker_loop.h"

namespace vgpu {
using session_ptr = std::shared_ptr<host_session>;
}  // namespace vgpu

CAF_ALLOW_UNSAFE_MESSAGE_TYPE(vgpu::session_ptr)

namespace vgpu {

using attach_atom = caf::atom_constant<caf::atom("attach")>;
using detach_atom = caf::atom_constant<caf::atom("detach")>;
using ended_atom = caf::atom_constant<caf::atom("ended")>;
using connected_atom = caf::atom_constant<caf::atom("connected")>;
using done_atom = caf::atom_constant<caf::atom("done")>;
using tick_atom = caf::atom_constant<caf::atom("tick")>;

// A GPU worker: serves the rings of the sessions attached to it on its own thread.
using gpu_worker_actor = caf::typed_actor<
    caf::reacts_to<attach_atom, session_ptr>,
    caf::reacts_to<detach_atom, uint64_t, std::string>>;

// A session: one guest connection; learns from its worker when it ended.
using session_actor = caf::typed_actor<caf::reacts_to<ended_atom, std::string>>;

// The supervisor: places new sessions on workers, hears when they end, logs totals.
using supervisor_actor = caf::typed_actor<
    caf::reacts_to<connected_atom, session_ptr>,
    // session id, vm id, why it ended, calls processed, calls that failed, data-area bytes
    caf::reacts_to<done_atom, uint64_t, std::string, std::string, uint64_t, uint64_t, uint64_t>,
    caf::reacts_to<tick_atom>>;

gpu_worker_actor spawn_gpu_worker(caf::actor_system& sys, std::shared_ptr<worker_loop> loop);

session_actor spawn_session(caf::actor_system& sys, session_ptr s, gpu_worker_actor worker,
                            supervisor_actor supervisor);

supervisor_actor spawn_supervisor(caf::actor_system& sys, std::vector<std::shared_ptr<worker_loop>> loops,
                                  const mediator_options& opts, const gpu_access& gpus = {});

}  // namespace vgpu
