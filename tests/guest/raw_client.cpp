// vgpu-raw-client: speaks the protocol directly through the guest transport, to
// send what no CUDA program can: unknown call ids, short arguments, data
// references outside the data area, records that are not even a message.
// The mediator must answer each with an error (or drop just this connection)
// and keep serving everybody else.
//
//   vgpu-raw-client unknown-call | bad-args | bad-data-ref | garbage-record
//   vgpu-raw-client hold-all [release-file]   creates one of each handle kind, prints
//                                             `IDS ptr stream event blas lt graph exec vmm va module func`,
//                                             waits for the file, checks its data is intact
//   vgpu-raw-client forge ptr stream event blas lt graph exec vmm va module func
//                                             uses another process's ids: each must fail
//   vgpu-raw-client cycle [seed]              allocates a bit of everything, prints READY,
//                                             then exits without freeing (or is killed)
//
// Connects to the mediator named by VGPU_SOCKET (the transport reads it). Prints
// PASS/FAIL lines; exits 0 only when every expectation held.
#include <cuda_runtime_api.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "api_wire.h"
#include "shim/transport/module_calls.h"
#include "shim/transport/raw_access.h"

namespace {

namespace raw = vgpu::shim::raw;

int g_failed = 0, g_passed = 0;

bool check(const std::string& name, bool ok, const std::string& detail) {
  if (ok) {
    ++g_passed;
    std::printf("PASS %s\n", name.c_str());
  } else {
    ++g_failed;
    std::printf("FAIL %s: %s\n", name.c_str(), detail.c_str());
  }
  std::fflush(stdout);
  return ok;
}

std::string rc_text(cudaError_t e) {
  return std::to_string(static_cast<int>(e));
}

bool expect_call(const std::string& name, uint16_t id, const void* args, uint32_t len, cudaError_t want,
                 std::vector<uint8_t>* reply) {
  std::vector<uint8_t> local;
  const cudaError_t got = raw::call(id, args, len, reply ? reply : &local);
  return check(name, got == want, "status " + rc_text(got) + ", expected " + rc_text(want));
}

// A malloc through the raw protocol; 0 on failure.
uint64_t raw_malloc(uint64_t size) {
  vgpu::wire::cudaMalloc_req req{};
  req.size = size;
  std::vector<uint8_t> reply;
  if (!expect_call("cudaMalloc(" + std::to_string(size) + ")", 0x0030, &req, sizeof req, cudaSuccess, &reply))
    return 0;
  if (!check("cudaMalloc reply is 8 bytes", reply.size() == sizeof(vgpu::wire::cudaMalloc_rep),
             std::to_string(reply.size()) + " bytes"))
    return 0;
  vgpu::wire::cudaMalloc_rep rep{};
  std::memcpy(&rep, reply.data(), sizeof rep);
  check("cudaMalloc returned a pointer", rep.devPtr != 0, "null device pointer");
  return rep.devPtr;
}

// The connection still works: a plain synchronous call succeeds.
void expect_alive(const std::string& when) {
  std::vector<uint8_t> reply;
  if (expect_call("cudaGetDeviceCount " + when, 0x0001, nullptr, 0, cudaSuccess, &reply) &&
      check("cudaGetDeviceCount reply is 4 bytes " + when, reply.size() == 4, std::to_string(reply.size()) + " bytes")) {
    int32_t count = 0;
    std::memcpy(&count, reply.data(), 4);
    check("device count >= 1 " + when, count >= 1, std::to_string(count));
  }
}

void unknown_call() {
  expect_alive("before");
  expect_call("unknown call id 0x7ffe", 0x7ffe, nullptr, 0, cudaErrorNotSupported, nullptr);
  const uint8_t junk[24] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
  expect_call("unknown call id 0x7ffe with arguments", 0x7ffe, junk, sizeof junk, cudaErrorNotSupported, nullptr);
  expect_call("unknown call id 0xffff", 0xffff, nullptr, 0, cudaErrorNotSupported, nullptr);
  expect_alive("after unknown calls");
}

void bad_args() {
  const uint8_t three[3] = {0x00, 0x10, 0x00};
  expect_call("cudaMalloc with 3 bytes of arguments", 0x0030, three, sizeof three, cudaErrorInvalidValue, nullptr);
  const uint8_t sixteen[16] = {0x00, 0x10};
  expect_call("cudaMalloc with 16 bytes of arguments", 0x0030, sixteen, sizeof sixteen, cudaErrorInvalidValue, nullptr);
  expect_call("cudaMalloc with no arguments", 0x0030, nullptr, 0, cudaErrorInvalidValue, nullptr);
  expect_call("cudaGetDeviceCount with unexpected arguments", 0x0001, sixteen, 4, cudaErrorInvalidValue, nullptr);
  const uint64_t p = raw_malloc(4096);
  if (p) {
    vgpu::wire::cudaFree_req f{};
    f.devPtr = p;
    expect_call("cudaFree of the raw allocation", 0x0031, &f, sizeof f, cudaSuccess, nullptr);
  }
  expect_alive("after bad arguments");
}

void bad_data_ref() {
  const uint64_t p = raw_malloc(4096);
  if (!p) return;
  struct ref_case {
    const char* what;
    uint64_t offset, length;
  } cases[] = {
      {"offset beyond the data area", 1ull << 40, 16},
      {"length beyond the data area", 0, 1ull << 40},
      {"offset + length wraps around 2^64", ~0ull - 7, 16},
      {"length 2^64-1", 8, ~0ull},
  };
  for (const ref_case& c : cases) {
    vgpu::wire::vgpuMemcpyHtoD_req req{};
    req.dst = p;
    req.src.offset = c.offset;
    req.src.length = c.length;
    req.stream = 0;
    req.flags = 0;
    expect_call(std::string("vgpuMemcpyHtoD with ") + c.what, 0x0040, &req, sizeof req, cudaErrorInvalidValue, nullptr);
  }
  for (const ref_case& c : cases) {
    // The host must not write outside the data area either.
    vgpu::wire::vgpuMemcpyDtoH_req req{};
    req.dst.offset = c.offset;
    req.dst.length = c.length;
    req.src = p;
    req.stream = 0;
    req.flags = 0;
    expect_call(std::string("vgpuMemcpyDtoH with ") + c.what, 0x0041, &req, sizeof req, cudaErrorInvalidValue, nullptr);
  }
  vgpu::wire::cudaFree_req f{};
  f.devPtr = p;
  expect_call("cudaFree after bad data references", 0x0031, &f, sizeof f, cudaSuccess, nullptr);
  expect_alive("after bad data references");
}

void garbage_record() {
  expect_alive("before garbage");
  const uint8_t junk[5] = {0xde, 0xad, 0xbe, 0xef, 0x01};
  check("write_record of 5 junk bytes", raw::write_record(junk, sizeof junk), "the transport refused to write it");

  // The host must drop this connection; the next call must fail promptly, not
  // hang. A generous watchdog turns a hang into a failure.
  std::atomic<bool> done{false};
  std::thread watchdog([&done] {
    for (int i = 0; i < 600 && !done.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    if (!done.load()) {
      std::printf("FAIL call after garbage: no answer after 60 s (hang)\n");
      std::fflush(stdout);
      _exit(3);
    }
  });
  std::vector<uint8_t> reply;
  const cudaError_t got = raw::call(0x0001, nullptr, 0, &reply);
  done = true;
  watchdog.join();
  check("call after garbage reports the mediator gone", got == cudaErrorDevicesUnavailable,
        "status " + rc_text(got) + ", expected cudaErrorDevicesUnavailable (" +
            rc_text(cudaErrorDevicesUnavailable) + ")");
}

uint64_t create_u64(const std::string& what, uint16_t id, const void* args, uint32_t len) {
  std::vector<uint8_t> reply;
  if (!expect_call(what, id, args, len, cudaSuccess, &reply)) return 0;
  uint64_t v = 0;
  if (!check(what + " reply has an id", reply.size() >= 8, std::to_string(reply.size()) + " bytes")) return 0;
  std::memcpy(&v, reply.data(), 8);
  return v;
}

struct held_ids {
  uint64_t ptr = 0, stream = 0, event = 0, blas = 0, lt = 0, graph = 0, exec = 0, vmm = 0, va = 0, module = 0, func = 0;
};

constexpr uint64_t kHoldBytes = 1 << 20;
constexpr uint64_t kVmmBytes = 2 << 20;

held_ids create_all() {
  held_ids h;
  h.ptr = raw_malloc(kHoldBytes);
  h.stream = create_u64("cudaStreamCreate", 0x0050, nullptr, 0);
  h.event = create_u64("cudaEventCreate", 0x0060, nullptr, 0);
  h.blas = create_u64("vgpuBlasCreate", 0x0200, nullptr, 0);
  h.lt = create_u64("vgpuLtCreate", 0x0300, nullptr, 0);
  vgpu::wire::vgpuGraphCreate_req gc{};
  h.graph = create_u64("vgpuGraphCreate", 0x00B2, &gc, sizeof gc);
  if (h.graph) {
    vgpu::wire::vgpuGraphInstantiate_req gi{};
    gi.graph = h.graph;
    h.exec = create_u64("vgpuGraphInstantiate", 0x00C0, &gi, sizeof gi);
  }
  vgpu::wire::vgpuMemCreate_req mc{};
  mc.size = kVmmBytes;
  mc.device = 0;
  h.vmm = create_u64("vgpuMemCreate", 0x0081, &mc, sizeof mc);
  vgpu::wire::vgpuMemAddressReserve_req ar{};
  ar.size = kVmmBytes;
  h.va = create_u64("vgpuMemAddressReserve", 0x0083, &ar, sizeof ar);
  // A module (PTX text, loaded through the data area as cuModuleLoadData does)
  // and its kernel's host-issued function id.
  static const char kPtx[] =
      ".version 7.0\n.target sm_50\n.address_size 64\n.visible .entry vgpu_isolation_k()\n{\n  ret;\n}\n";
  h.module = vgpu::shim::next_module_id();
  const cudaError_t up = vgpu::shim::upload_module(h.module, reinterpret_cast<const uint8_t*>(kPtx), sizeof kPtx);
  if (check("module load (PTX)", up == cudaSuccess, "status " + rc_text(up))) {
    vgpu::shim::function_info fi;
    const cudaError_t gf = vgpu::shim::get_function(h.module, "vgpu_isolation_k", &fi);
    if (check("module get function", gf == cudaSuccess && fi.function != 0, "status " + rc_text(gf)))
      h.func = fi.function;
  }
  return h;
}

void memset_ptr(const std::string& what, uint64_t p, int v, cudaError_t want) {
  vgpu::wire::vgpuMemset_req m{};
  m.dst = p;
  m.value = v;
  m.count = kHoldBytes;
  expect_call(what, 0x0043, &m, sizeof m, want, nullptr);
}

void hold_all(const std::string& release_file) {
  const held_ids h = create_all();
  if (h.ptr) memset_ptr("memset the held allocation", h.ptr, 0x5a, cudaSuccess);
  std::printf("IDS %llx %llx %llx %llx %llx %llx %llx %llx %llx %llx %llx\n", (unsigned long long)h.ptr,
              (unsigned long long)h.stream, (unsigned long long)h.event, (unsigned long long)h.blas,
              (unsigned long long)h.lt, (unsigned long long)h.graph, (unsigned long long)h.exec,
              (unsigned long long)h.vmm, (unsigned long long)h.va, (unsigned long long)h.module,
              (unsigned long long)h.func);
  std::printf("HOLDING\n");
  std::fflush(stdout);
  if (!release_file.empty()) {
    for (int i = 0; i < 3000 && access(release_file.c_str(), F_OK) != 0; ++i)
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  // Everything still works for its owner, and its memory is what it wrote.
  // (The bytes themselves are checked by vgpu-guest-test hold/foreign, which reads
  // them back through the runtime; here: the allocation is still this session's.)
  if (h.ptr) memset_ptr("owner memsets its allocation after the forgeries", h.ptr, 0x5a, cudaSuccess);
  vgpu::wire::cudaStreamSynchronize_req ss{h.stream};
  expect_call("owner syncs its stream", 0x0054, &ss, sizeof ss, cudaSuccess, nullptr);
  vgpu::wire::cudaEventRecord_req er{h.event, h.stream};
  check("owner posts an event record", raw::post(0x0062, &er, sizeof er) == cudaSuccess, "post failed");
  vgpu::wire::cudaEventSynchronize_req es{h.event};
  expect_call("owner syncs its event", 0x0063, &es, sizeof es, cudaSuccess, nullptr);
  vgpu::wire::vgpuBlasSetStream_req bs{h.blas, h.stream};
  expect_call("owner sets its cuBLAS stream", 0x0202, &bs, sizeof bs, cudaSuccess, nullptr);
  vgpu::wire::vgpuGraphLaunch_req gl{h.exec, h.stream};
  check("owner posts a launch of its graph", raw::post(0x00C1, &gl, sizeof gl) == cudaSuccess, "post failed");
  if (h.func)
    check("owner posts a launch of its kernel",
          vgpu::shim::post_launch(h.func, vgpu::shim::launch_shape{}, nullptr, 0) == cudaSuccess, "post failed");
  expect_call("owner's posted calls all succeeded (cudaDeviceSynchronize)", 0x0005, nullptr, 0, cudaSuccess, nullptr);
  vgpu::wire::vgpuMemMap_req mm{h.va, kVmmBytes, 0, h.vmm};
  expect_call("owner maps its VMM allocation", 0x0085, &mm, sizeof mm, cudaSuccess, nullptr);
  vgpu::wire::cudaFree_req fr{};
  fr.devPtr = h.ptr;
  expect_call("owner frees its allocation (a forged free did not)", 0x0031, &fr, sizeof fr, cudaSuccess, nullptr);
  expect_alive("after the forgeries");
}

void forge(const held_ids& f) {
  // Before this process owns anything: every id below is another session's.
  const cudaError_t ok = cudaSuccess;
  auto refused = [&](const std::string& what, uint16_t id, const void* a, uint32_t len) {
    std::vector<uint8_t> reply;
    const cudaError_t got = raw::call(id, a, len, &reply);
    check("forged " + what + " refused", got != ok, "status 0 (accepted)");
    if (got != ok) std::printf("  %s -> status %d\n", what.c_str(), static_cast<int>(got));
  };
  memset_ptr("forged memset of the pointer refused (cudaErrorInvalidValue)", f.ptr, 0, cudaErrorInvalidValue);
  vgpu::wire::vgpuMemcpyDtoH_req d2h{};
  d2h.dst.offset = 0;
  d2h.dst.length = 4096;
  d2h.src = f.ptr;
  refused("cudaMemcpy D2H of the pointer", 0x0041, &d2h, sizeof d2h);
  vgpu::wire::vgpuMemcpyHtoD_req h2d{};
  h2d.dst = f.ptr;
  h2d.src.offset = 0;
  h2d.src.length = 4096;
  refused("cudaMemcpy H2D to the pointer", 0x0040, &h2d, sizeof h2d);
  vgpu::wire::cudaStreamSynchronize_req ss{f.stream};
  refused("cudaStreamSynchronize", 0x0054, &ss, sizeof ss);
  // Posted calls: the refusal surfaces at the next synchronising call.
  auto posted_refused = [&](const std::string& what, uint16_t id, const void* a, uint32_t len) {
    check("posted forged " + what, raw::post(id, a, len) == ok, "post failed");
    refused(what + " (its error at cudaDeviceSynchronize)", 0x0005, nullptr, 0);
    expect_call("cudaDeviceSynchronize clean again after the forged " + what, 0x0005, nullptr, 0, ok, nullptr);
  };
  vgpu::wire::cudaEventRecord_req er{f.event, 0};
  posted_refused("cudaEventRecord", 0x0062, &er, sizeof er);
  vgpu::wire::cudaEventSynchronize_req es{f.event};
  refused("cudaEventSynchronize", 0x0063, &es, sizeof es);
  vgpu::wire::vgpuBlasSetStream_req bs{f.blas, 0};
  refused("cublasSetStream", 0x0202, &bs, sizeof bs);
  vgpu::wire::vgpuGraphLaunch_req gl{f.exec, 0};
  posted_refused("cudaGraphLaunch", 0x00C1, &gl, sizeof gl);
  {
    check("posted forged cuLaunchKernel", vgpu::shim::post_launch(f.func, vgpu::shim::launch_shape{}, nullptr, 0) == ok,
          "post failed");
    refused("cuLaunchKernel (its error at cudaDeviceSynchronize)", 0x0005, nullptr, 0);
    expect_call("cudaDeviceSynchronize clean again after the forged launch", 0x0005, nullptr, 0, ok, nullptr);
    vgpu::shim::function_info fi;
    check("forged cuModuleGetFunction refused", vgpu::shim::get_function(f.module, "vgpu_isolation_k", &fi) != ok,
          "the other session's module was found");
  }
  vgpu::wire::vgpuGraphInstantiate_req gi{};
  gi.graph = f.graph;
  refused("cudaGraphInstantiate", 0x00C0, &gi, sizeof gi);
  vgpu::wire::vgpuMemMap_req mm{f.va, kVmmBytes, 0, f.vmm};
  refused("cuMemMap of both", 0x0085, &mm, sizeof mm);
  // Destroys last: none may reach the owner's objects.
  vgpu::wire::cudaFree_req fr{};
  fr.devPtr = f.ptr;
  refused("cudaFree", 0x0031, &fr, sizeof fr);
  vgpu::wire::cudaStreamDestroy_req sd{f.stream};
  refused("cudaStreamDestroy", 0x0053, &sd, sizeof sd);
  vgpu::wire::cudaEventDestroy_req ed{f.event};
  refused("cudaEventDestroy", 0x0066, &ed, sizeof ed);
  uint64_t hv = f.blas;
  refused("cublasDestroy", 0x0201, &hv, sizeof hv);
  hv = f.lt;
  refused("cublasLtDestroy", 0x0301, &hv, sizeof hv);
  hv = f.exec;
  refused("cudaGraphExecDestroy", 0x00C3, &hv, sizeof hv);
  hv = f.graph;
  refused("cudaGraphDestroy", 0x00B3, &hv, sizeof hv);
  hv = f.vmm;
  refused("cuMemRelease", 0x0082, &hv, sizeof hv);
  check("forged cuModuleUnload refused", vgpu::shim::unload_module(f.module) != ok, "accepted");
  // And this process keeps working: its own objects, freed.
  const held_ids own = create_all();
  check("own ids were issued", own.ptr && own.stream && own.event && own.graph, "a create failed");
  if (own.ptr) memset_ptr("own memset", own.ptr, 0x33, cudaSuccess);
  vgpu::wire::cudaFree_req own_free{};
  own_free.devPtr = own.ptr;
  expect_call("own cudaFree", 0x0031, &own_free, sizeof own_free, cudaSuccess, nullptr);
  expect_alive("after the forgeries");
}

// A lean guest for the connect/kill cycles: one of each kind, never freed.
void cycle() {
  const held_ids h = create_all();
  if (h.ptr) memset_ptr("cycle memset", h.ptr, 1, cudaSuccess);
  std::printf("READY\n");
  std::fflush(stdout);
}

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  if (argc < 2) {
    std::fprintf(stderr, "usage: vgpu-raw-client unknown-call|bad-args|bad-data-ref|garbage-record|hold-all|forge|cycle\n");
    return 2;
  }
  const std::string cmd = argv[1];
  if (cmd == "hold-all") hold_all(argc > 2 ? argv[2] : "");
  else if (cmd == "forge" && argc == 13) {
    uint64_t v[11];
    for (int i = 0; i < 11; ++i) v[i] = std::strtoull(argv[2 + i], nullptr, 16);
    forge(held_ids{v[0], v[1], v[2], v[3], v[4], v[5], v[6], v[7], v[8], v[9], v[10]});
  } else if (cmd == "cycle") {
    cycle();
    return 0;
  } else if (cmd == "unknown-call") unknown_call();
  else if (cmd == "bad-args") bad_args();
  else if (cmd == "bad-data-ref") bad_data_ref();
  else if (cmd == "garbage-record") garbage_record();
  else {
    std::fprintf(stderr, "unknown subcommand %s\n", cmd.c_str());
    return 2;
  }
  std::printf("SUMMARY %s: %d passed, %d failed\n", cmd.c_str(), g_passed, g_failed);
  return g_failed == 0 && g_passed > 0 ? 0 : 1;
}
