// vgpu-raw-client: speaks the protocol directly through the guest transport, to
// send what no CUDA program can: unknown call ids, short arguments, data
// references outside the data area, records that are not even a message.
// The mediator must answer each with an error (or drop just this connection)
// and keep serving everybody else.
//
//   vgpu-raw-client unknown-call | bad-args | bad-data-ref | garbage-record
//
// Connects to the mediator named by VGPU_SOCKET (the transport reads it). Prints
// PASS/FAIL lines; exits 0 only when every expectation held.
#include <cuda_runtime_api.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "api_wire.h"
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

}  // namespace

int main(int argc, char** argv) {
  std::setvbuf(stdout, nullptr, _IOLBF, 0);
  if (argc != 2) {
    std::fprintf(stderr, "usage: vgpu-raw-client unknown-call|bad-args|bad-data-ref|garbage-record\n");
    return 2;
  }
  const std::string cmd = argv[1];
  if (cmd == "unknown-call") unknown_call();
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
