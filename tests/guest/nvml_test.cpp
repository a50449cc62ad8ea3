// vgpu-nvml-test: a guest program using NVML (libnvidia-ml.so.1) the way
// Ollama's GPU discovery and nvidia-smi-like tools do, before and alongside
// the CUDA runtime, checking every NVML answer against what the runtime
// reports through the same mediator. Linked against libnvidia-ml.so.1 and the
// runtime with no RPATH: LD_LIBRARY_PATH decides whose libraries it loads.
//
//   vgpu-nvml-test [--expect-vgpu] [--reference]
//     --expect-vgpu  also checks vgpu's own promises (unknown entry points answer
//                    NOT_SUPPORTED, forged handles are refused, NVML's memory
//                    total is exactly cudaMemGetInfo's: the VM has one view)
//     --reference    also checks the reference executor's fixed answers
// Prints PASS/FAIL lines; exits 1 on any failure.
#include <cuda_runtime_api.h>
#include <dlfcn.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "shim/nvml/nvml_abi.h"

namespace {

int g_failures = 0;

void check(bool ok, const std::string& what, const std::string& detail = "") {
  if (ok) {
    std::printf("PASS %s\n", what.c_str());
  } else {
    std::printf("FAIL %s%s%s\n", what.c_str(), detail.empty() ? "" : ": ", detail.c_str());
    ++g_failures;
  }
}

std::string text(nvmlReturn_t r) { return std::to_string(static_cast<int>(r)) + " (" + nvmlErrorString(r) + ")"; }

bool ok_nvml(nvmlReturn_t r, const std::string& what) {
  check(r == NVML_SUCCESS, what, text(r));
  return r == NVML_SUCCESS;
}

void expect(nvmlReturn_t got, nvmlReturn_t want, const std::string& what) {
  check(got == want, what, "got " + text(got) + ", want " + text(want));
}

std::string uuid_of(const cudaDeviceProp& p) {
  const auto* b = reinterpret_cast<const unsigned char*>(p.uuid.bytes);
  char out[64];
  std::snprintf(out, sizeof out, "GPU-%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11], b[12], b[13], b[14],
                b[15]);
  return out;
}

constexpr unsigned long long kMiB = 1ull << 20;
// Free memory may move between two readings on a shared GPU (other guests,
// the driver): readings taken around an NVML one must bracket it within this.
constexpr unsigned long long kDriftBytes = 64 * kMiB;
// The reference executor's device name starts so (actors/executor/reference/).
constexpr const char kReferenceNamePrefix[] = "vgpu reference executor";

// NVML's total against cudaMemGetInfo's. Through vgpu they are the VM's one
// view: equal. NVIDIA's NVML counts the memory the driver reserves for itself
// (480 MiB of 81559 on an H100), which cudaMemGetInfo leaves out: natively
// NVML's total is at least the runtime's, and the difference is a reservation
// (at most an eighth of the device), not another device's size.
bool total_agrees(unsigned long long nvml_total, size_t cuda_total, bool expect_vgpu) {
  if (expect_vgpu) return nvml_total == cuda_total;
  return nvml_total >= cuda_total && nvml_total - cuda_total <= nvml_total / 8;
}

// Init/shutdown count and the calls made without initialisation.
void init_counting() {
  unsigned int n = 0;
  expect(nvmlDeviceGetCount_v2(&n), NVML_ERROR_UNINITIALIZED, "nvmlDeviceGetCount_v2 before nvmlInit is refused");
  expect(nvmlShutdown(), NVML_ERROR_UNINITIALIZED, "nvmlShutdown without nvmlInit is refused");
  ok_nvml(nvmlInit_v2(), "nvmlInit_v2");
  ok_nvml(nvmlInitWithFlags(0), "nvmlInitWithFlags(0) (count 2)");
  ok_nvml(nvmlShutdown(), "nvmlShutdown (count 1)");
  ok_nvml(nvmlDeviceGetCount_v2(&n), "still initialised after one of two nvmlShutdown");
  ok_nvml(nvmlShutdown(), "nvmlShutdown (count 0)");
  expect(nvmlDeviceGetCount_v2(&n), NVML_ERROR_UNINITIALIZED, "uninitialised after the last nvmlShutdown");
  expect(nvmlShutdown(), NVML_ERROR_UNINITIALIZED, "one nvmlShutdown too many is refused");
  ok_nvml(nvmlInit(), "nvmlInit (v1 name) initialises again");
  ok_nvml(nvmlShutdown(), "nvmlShutdown after nvmlInit");
}

// NVML before any CUDA call (Ollama's discovery order); returns the count.
unsigned int discovery(bool reference) {
  unsigned int n = 0;
  ok_nvml(nvmlDeviceGetCount_v2(&n), "nvmlDeviceGetCount_v2");
  char v[NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE] = {};
  if (ok_nvml(nvmlSystemGetDriverVersion(v, sizeof v), "nvmlSystemGetDriverVersion")) {
    std::printf("  driver version: %s\n", v);
    check(v[0] != '\0', "driver version is not empty");
    if (reference) check(std::strcmp(v, "vgpu-reference") == 0, "reference executor's driver version", v);
  }
  char nv[NVML_SYSTEM_NVML_VERSION_BUFFER_SIZE] = {};
  if (ok_nvml(nvmlSystemGetNVMLVersion(nv, sizeof nv), "nvmlSystemGetNVMLVersion")) {
    std::printf("  NVML version: %s\n", nv);
    check(std::string(nv).find(v) != std::string::npos, "NVML version names the driver version", nv);
  }
  expect(nvmlSystemGetDriverVersion(v, 2), NVML_ERROR_INSUFFICIENT_SIZE, "driver version into 2 bytes: INSUFFICIENT_SIZE");
  nvmlDevice_t d = nullptr;
  if (n > 0 && ok_nvml(nvmlDeviceGetHandleByIndex_v2(0, &d), "nvmlDeviceGetHandleByIndex_v2(0) before CUDA")) {
    nvmlMemory_t m{};
    if (ok_nvml(nvmlDeviceGetMemoryInfo(d, &m), "nvmlDeviceGetMemoryInfo before CUDA")) {
      check(m.total > 0 && m.free <= m.total && m.used == m.total - m.free, "memory before CUDA is consistent");
    }
  }
  return n;
}

void device_checks(unsigned int i, bool reference, bool expect_vgpu) {
  const std::string at = " (device " + std::to_string(i) + ")";
  nvmlDevice_t d = nullptr;
  if (!ok_nvml(nvmlDeviceGetHandleByIndex_v2(i, &d), "nvmlDeviceGetHandleByIndex_v2" + at)) return;
  cudaDeviceProp p{};
  if (cudaGetDeviceProperties(&p, static_cast<int>(i)) != cudaSuccess) {
    check(false, "cudaGetDeviceProperties" + at);
    return;
  }
  char name[NVML_DEVICE_NAME_V2_BUFFER_SIZE] = {};
  if (ok_nvml(nvmlDeviceGetName(d, name, sizeof name), "nvmlDeviceGetName" + at)) {
    std::printf("  name: %s\n", name);
    check(std::strcmp(name, p.name) == 0, "name is cudaGetDeviceProperties' name" + at, name);
  }
  char uuid[NVML_DEVICE_UUID_BUFFER_SIZE] = {};
  if (ok_nvml(nvmlDeviceGetUUID(d, uuid, sizeof uuid), "nvmlDeviceGetUUID" + at)) {
    std::printf("  uuid: %s\n", uuid);
    check(uuid_of(p) == uuid, "UUID is cudaGetDeviceProperties' uuid" + at, uuid_of(p));
    nvmlDevice_t by = nullptr;
    if (ok_nvml(nvmlDeviceGetHandleByUUID(uuid, &by), "nvmlDeviceGetHandleByUUID" + at)) {
      check(by == d, "the UUID finds the same handle" + at);
    }
  }
  unsigned int index = 99;
  if (ok_nvml(nvmlDeviceGetIndex(d, &index), "nvmlDeviceGetIndex" + at)) check(index == i, "index" + at);
  unsigned int minor = 0;
  ok_nvml(nvmlDeviceGetMinorNumber(d, &minor), "nvmlDeviceGetMinorNumber" + at);
  int major = -1, minr = -1;
  if (ok_nvml(nvmlDeviceGetCudaComputeCapability(d, &major, &minr), "nvmlDeviceGetCudaComputeCapability" + at)) {
    check(major == p.major && minr == p.minor, "compute capability is the runtime's" + at,
          std::to_string(major) + "." + std::to_string(minr));
  }
  nvmlPciInfo_t pci{};
  if (ok_nvml(nvmlDeviceGetPciInfo_v3(d, &pci), "nvmlDeviceGetPciInfo_v3" + at)) {
    std::printf("  bus id: %s (pciDeviceId 0x%08X)\n", pci.busId, pci.pciDeviceId);
    check(pci.domain == static_cast<unsigned>(p.pciDomainID) && pci.bus == static_cast<unsigned>(p.pciBusID) &&
              pci.device == static_cast<unsigned>(p.pciDeviceID),
          "PCI domain/bus/device are the runtime's" + at);
    char want[32];
    std::snprintf(want, sizeof want, "%08X:%02X:%02X.0", static_cast<unsigned>(p.pciDomainID),
                  static_cast<unsigned>(p.pciBusID), static_cast<unsigned>(p.pciDeviceID));
    check(std::strcmp(pci.busId, want) == 0, "busId format" + at, pci.busId);
    nvmlDevice_t by = nullptr;
    if (ok_nvml(nvmlDeviceGetHandleByPciBusId_v2(pci.busId, &by), "nvmlDeviceGetHandleByPciBusId_v2" + at)) {
      check(by == d, "the bus id finds the same handle" + at);
    }
    by = nullptr;
    if (ok_nvml(nvmlDeviceGetHandleByPciBusId_v2(pci.busIdLegacy, &by), "handle by legacy bus id" + at)) {
      check(by == d, "the legacy bus id finds the same handle" + at);
    }
    nvmlPciInfoV1_t v1{};
    if (ok_nvml(nvmlDeviceGetPciInfo(d, &v1), "nvmlDeviceGetPciInfo (v1 struct)" + at)) {
      check(std::strcmp(v1.busId, pci.busIdLegacy) == 0 && v1.bus == pci.bus && v1.pciDeviceId == pci.pciDeviceId,
            "v1 PCI info agrees with v3" + at, v1.busId);
    }
    // The reference executor is no NVIDIA device (and says so in its name):
    // it has no PCI product id. Every other device is NVIDIA's.
    const bool reference_device = std::strncmp(name, kReferenceNamePrefix, sizeof kReferenceNamePrefix - 1) == 0;
    if (reference) check(reference_device, "device is the reference executor's" + at, name);
    if (reference || reference_device) check(pci.pciDeviceId == 0, "reference device has no PCI product id" + at);
    else check((pci.pciDeviceId & 0xffffu) == 0x10de, "PCI vendor is NVIDIA" + at);
  }
  nvmlBrandType_t brand = NVML_BRAND_UNKNOWN;
  ok_nvml(nvmlDeviceGetBrand(d, &brand), "nvmlDeviceGetBrand" + at);
  nvmlEnableState_t pm = NVML_FEATURE_DISABLED;
  ok_nvml(nvmlDeviceGetPersistenceMode(d, &pm), "nvmlDeviceGetPersistenceMode" + at);

  // Memory: NVML's numbers must be the runtime's (the VM's view), read between
  // two cudaMemGetInfo calls on this device (totals: see total_agrees).
  if (cudaSetDevice(static_cast<int>(i)) != cudaSuccess) check(false, "cudaSetDevice" + at);
  size_t f0 = 0, t0 = 0, f1 = 0, t1 = 0;
  nvmlMemory_t m{};
  const cudaError_t c0 = cudaMemGetInfo(&f0, &t0);
  const nvmlReturn_t r = nvmlDeviceGetMemoryInfo(d, &m);
  const cudaError_t c1 = cudaMemGetInfo(&f1, &t1);
  if (c0 == cudaSuccess && c1 == cudaSuccess && ok_nvml(r, "nvmlDeviceGetMemoryInfo" + at)) {
    std::printf("  memory: %llu MiB free of %llu MiB (cudaMemGetInfo: %zu of %zu MiB)\n", m.free / kMiB,
                m.total / kMiB, f1 >> 20, t1 >> 20);
    check(total_agrees(m.total, t0, expect_vgpu) && total_agrees(m.total, t1, expect_vgpu),
          std::string(expect_vgpu ? "total is cudaMemGetInfo's total" : "total covers cudaMemGetInfo's total") + at,
          std::to_string(m.total) + " vs " + std::to_string(t0) + ", " + std::to_string(t1));
    const unsigned long long lo = (f0 < f1 ? f0 : f1), hi = (f0 < f1 ? f1 : f0);
    check(m.free + kDriftBytes >= lo && m.free <= hi + kDriftBytes, "free is cudaMemGetInfo's free" + at);
    check(m.used == m.total - m.free, "used = total - free" + at);
    if (reference) check(m.free == f0 && m.free == f1, "free is exactly cudaMemGetInfo's (reference)" + at);
  } else if (c0 != cudaSuccess || c1 != cudaSuccess) {
    check(false, "cudaMemGetInfo" + at);
  }
  // An allocation shows in NVML's free memory.
  void* block = nullptr;
  const size_t kBlock = 256 * kMiB;
  if (cudaMalloc(&block, kBlock) == cudaSuccess) {
    nvmlMemory_t after{};
    size_t fa = 0, ta = 0;
    if (ok_nvml(nvmlDeviceGetMemoryInfo(d, &after), "nvmlDeviceGetMemoryInfo after cudaMalloc" + at) &&
        cudaMemGetInfo(&fa, &ta) == cudaSuccess) {
      check(m.free >= after.free + kBlock - kDriftBytes, "256 MiB cudaMalloc lowers NVML's free memory" + at);
      check(total_agrees(after.total, ta, expect_vgpu),
            std::string(expect_vgpu ? "total is cudaMemGetInfo's" : "total covers cudaMemGetInfo's") +
                " after cudaMalloc" + at,
            std::to_string(after.total) + " vs " + std::to_string(ta));
      check(after.free + kDriftBytes >= fa && after.free <= fa + kDriftBytes, "free is cudaMemGetInfo's after cudaMalloc" + at);
    }
    cudaFree(block);
  } else {
    check(false, "cudaMalloc 256 MiB" + at);
  }
  // Memory v2 (NVIDIA's semantics): total is v1's total, reserved is the
  // driver's part of it, used + free + reserved == total, and total - reserved
  // is cudaMemGetInfo's total. Natively on an H100: 81559 = 480 reserved +
  // 81079 (cudaMemGetInfo's total); through vgpu reserved is 0 (the VM's total
  // already leaves the host's reservation out).
  nvmlMemory_v2_t m2{};
  m2.version = nvmlMemory_v2;
  size_t f2 = 0, t2 = 0;
  const cudaError_t c2 = cudaMemGetInfo(&f2, &t2);
  const nvmlReturn_t r2 = nvmlDeviceGetMemoryInfo_v2(d, &m2);
  const cudaError_t c3 = cudaMemGetInfo(&f1, &t1);
  if (ok_nvml(r2, "nvmlDeviceGetMemoryInfo_v2" + at) && c2 == cudaSuccess && c3 == cudaSuccess) {
    std::printf("  memory v2: total %llu MiB, reserved %llu MiB, free %llu MiB, used %llu MiB\n", m2.total / kMiB,
                m2.reserved / kMiB, m2.free / kMiB, m2.used / kMiB);
    const std::string got = std::to_string(m2.total) + " = " + std::to_string(m2.used) + " used + " +
                            std::to_string(m2.free) + " free + " + std::to_string(m2.reserved) + " reserved";
    check(m2.reserved <= m2.total && m2.free <= m2.total - m2.reserved &&
              m2.used == m2.total - m2.reserved - m2.free,
          "memory v2: used + free + reserved == total" + at, got);
    if (r == NVML_SUCCESS) check(m2.total == m.total, "memory v2 total is v1's total" + at, got);
    check(m2.total - m2.reserved == t2 && t2 == t1, "memory v2 total - reserved is cudaMemGetInfo's total" + at,
          got + "; cudaMemGetInfo total " + std::to_string(t2));
    if (expect_vgpu) check(m2.reserved == 0, "memory v2 reserves nothing in the VM's view" + at, got);
    const unsigned long long lo = (f2 < f1 ? f2 : f1), hi = (f2 < f1 ? f1 : f2);
    check(m2.free + kDriftBytes >= lo && m2.free <= hi + kDriftBytes, "memory v2 free is cudaMemGetInfo's free" + at,
          std::to_string(m2.free) + " vs " + std::to_string(f2) + ", " + std::to_string(f1));
  } else if (c2 != cudaSuccess || c3 != cudaSuccess) {
    check(false, "cudaMemGetInfo around memory v2" + at);
  }

  nvmlUtilization_t u{};
  const nvmlReturn_t ur = nvmlDeviceGetUtilizationRates(d, &u);
  if (reference) {
    check(ur == NVML_SUCCESS && u.gpu == 0 && u.memory == 0, "utilization 0% (reference)" + at, text(ur));
  } else {
    check(ur == NVML_ERROR_NOT_SUPPORTED || (ur == NVML_SUCCESS && u.gpu <= 100 && u.memory <= 100),
          "utilization is a percentage or not supported" + at, text(ur));
  }
  unsigned int temp = 0;
  const nvmlReturn_t tr = nvmlDeviceGetTemperature(d, NVML_TEMPERATURE_GPU, &temp);
  if (reference) expect(tr, NVML_ERROR_NOT_SUPPORTED, "temperature not supported (reference)" + at);
  else check(tr == NVML_ERROR_NOT_SUPPORTED || (tr == NVML_SUCCESS && temp > 0 && temp < 130),
             "temperature is plausible or not supported" + at, text(tr) + " " + std::to_string(temp));
  unsigned int power = 0;
  const nvmlReturn_t pr = nvmlDeviceGetPowerUsage(d, &power);
  if (reference) expect(pr, NVML_ERROR_NOT_SUPPORTED, "power not supported (reference)" + at);
  else check(pr == NVML_ERROR_NOT_SUPPORTED || (pr == NVML_SUCCESS && power > 0),
             "power is plausible or not supported" + at, text(pr));
  unsigned int procs = 0;
  const nvmlReturn_t cr = nvmlDeviceGetComputeRunningProcesses_v3(d, &procs, nullptr);
  check(cr == NVML_SUCCESS || cr == NVML_ERROR_INSUFFICIENT_SIZE || cr == NVML_ERROR_NOT_SUPPORTED,
        "nvmlDeviceGetComputeRunningProcesses_v3 answers" + at, text(cr));
}

void bad_arguments(unsigned int count, bool expect_vgpu) {
  unsigned int n = 0;
  nvmlDevice_t d = nullptr;
  expect(nvmlDeviceGetCount_v2(nullptr), NVML_ERROR_INVALID_ARGUMENT, "nvmlDeviceGetCount_v2(NULL)");
  expect(nvmlDeviceGetHandleByIndex_v2(count, &d), NVML_ERROR_INVALID_ARGUMENT, "handle of index == count");
  expect(nvmlDeviceGetHandleByIndex_v2(0, nullptr), NVML_ERROR_INVALID_ARGUMENT, "handle into NULL");
  expect(nvmlDeviceGetName(nullptr, nullptr, 0), NVML_ERROR_INVALID_ARGUMENT, "nvmlDeviceGetName(NULL handle)");
  expect(nvmlDeviceGetIndex(nullptr, &n), NVML_ERROR_INVALID_ARGUMENT, "nvmlDeviceGetIndex(NULL handle)");
  expect(nvmlDeviceGetHandleByUUID("GPU-00000000-0000-0000-0000-000000000000", &d), NVML_ERROR_NOT_FOUND,
         "unknown UUID: NOT_FOUND");
  expect(nvmlDeviceGetHandleByUUID(nullptr, &d), NVML_ERROR_INVALID_ARGUMENT, "nvmlDeviceGetHandleByUUID(NULL)");
  if (count == 0 || nvmlDeviceGetHandleByIndex_v2(0, &d) != NVML_SUCCESS) return;
  char buf[4];
  expect(nvmlDeviceGetName(d, nullptr, 64), NVML_ERROR_INVALID_ARGUMENT, "nvmlDeviceGetName into NULL");
  expect(nvmlDeviceGetName(d, buf, 1), NVML_ERROR_INSUFFICIENT_SIZE, "name into 1 byte: INSUFFICIENT_SIZE");
  expect(nvmlDeviceGetUUID(d, buf, sizeof buf), NVML_ERROR_INSUFFICIENT_SIZE, "UUID into 4 bytes: INSUFFICIENT_SIZE");
  expect(nvmlDeviceGetMemoryInfo(d, nullptr), NVML_ERROR_INVALID_ARGUMENT, "nvmlDeviceGetMemoryInfo(NULL)");
  nvmlMemory_v2_t m2{};
  // NVIDIA's NVML answers FUNCTION_NOT_FOUND (not ARGUMENT_VERSION_MISMATCH)
  // for a wrong struct version here (H100, driver 580.159.04).
  m2.version = 1;
  expect(nvmlDeviceGetMemoryInfo_v2(d, &m2), NVML_ERROR_FUNCTION_NOT_FOUND, "memory v2 with a wrong version");
  m2.version = NVML_STRUCT_VERSION(sizeof(nvmlMemory_v2_t), 1);
  expect(nvmlDeviceGetMemoryInfo_v2(d, &m2), NVML_ERROR_FUNCTION_NOT_FOUND, "memory v2 with the v1 struct version");
  expect(nvmlDeviceGetMemoryInfo_v2(d, nullptr), NVML_ERROR_INVALID_ARGUMENT, "nvmlDeviceGetMemoryInfo_v2(NULL)");
  expect(nvmlDeviceGetPciInfo_v3(d, nullptr), NVML_ERROR_INVALID_ARGUMENT, "nvmlDeviceGetPciInfo_v3(NULL)");
  expect(nvmlDeviceGetUtilizationRates(d, nullptr), NVML_ERROR_INVALID_ARGUMENT, "nvmlDeviceGetUtilizationRates(NULL)");
  int major = 0;
  expect(nvmlDeviceGetCudaComputeCapability(d, &major, nullptr), NVML_ERROR_INVALID_ARGUMENT,
         "compute capability minor into NULL");
  if (!expect_vgpu) return;
  // Forged handles (real NVML may crash on these; vgpu must not).
  int not_a_device = 0;
  expect(nvmlDeviceGetName(reinterpret_cast<nvmlDevice_t>(&not_a_device), buf, sizeof buf),
         NVML_ERROR_INVALID_ARGUMENT, "a forged handle is refused");
  expect(nvmlDeviceGetName(reinterpret_cast<nvmlDevice_t>(reinterpret_cast<char*>(d) + 1), buf, sizeof buf),
         NVML_ERROR_INVALID_ARGUMENT, "a misaligned handle is refused");
  expect(nvmlDeviceGetHandleByPciBusId_v2("not-a-bus-id", &d), NVML_ERROR_INVALID_ARGUMENT, "malformed bus id");
  expect(nvmlInitWithFlags(0x80), NVML_ERROR_INVALID_ARGUMENT, "nvmlInitWithFlags with an unknown flag");
}

// Entry points vgpu does not implement exist and answer NOT_SUPPORTED.
void unsupported(unsigned int count) {
  nvmlDevice_t d = nullptr;
  if (count > 0) nvmlDeviceGetHandleByIndex_v2(0, &d);
  using dev_fn = nvmlReturn_t (*)(nvmlDevice_t, void*, void*);
  for (const char* name : {"nvmlDeviceGetEccMode", "nvmlDeviceGetEncoderUtilization", "nvmlDeviceGetMigMode",
                           "nvmlDeviceGetGraphicsRunningProcesses_v3", "nvmlDeviceSetPersistenceMode",
                           "nvmlDeviceGetComputeRunningProcesses_v2"}) {
    const auto fn = reinterpret_cast<dev_fn>(dlsym(RTLD_DEFAULT, name));
    if (!fn) {
      check(false, std::string(name) + " is exported");
      continue;
    }
    unsigned int a = 0, b = 0;
    expect(fn(d, &a, &b), NVML_ERROR_NOT_SUPPORTED, std::string(name) + " answers NOT_SUPPORTED");
  }
}

}  // namespace

int main(int argc, char** argv) {
  bool expect_vgpu = false, reference = false;
  for (int i = 1; i < argc; ++i) {
    if (std::strcmp(argv[i], "--expect-vgpu") == 0) expect_vgpu = true;
    else if (std::strcmp(argv[i], "--reference") == 0) reference = true;
    else {
      std::fprintf(stderr, "usage: %s [--expect-vgpu] [--reference]\n", argv[0]);
      return 2;
    }
  }
  if (expect_vgpu) check(dlsym(RTLD_DEFAULT, "vgpuShimInfo") != nullptr, "running through vgpu's shim");

  init_counting();
  if (!ok_nvml(nvmlInit_v2(), "nvmlInit_v2")) return 1;
  const unsigned int count = discovery(reference);

  int cuda_count = -1;
  if (cudaGetDeviceCount(&cuda_count) == cudaSuccess) {
    check(static_cast<int>(count) == cuda_count, "NVML device count is cudaGetDeviceCount's",
          std::to_string(count) + " vs " + std::to_string(cuda_count));
  } else {
    check(false, "cudaGetDeviceCount");
  }
  check(count > 0, "at least one device");
  int nvml_cuda = 0, rt_driver = 0;
  if (ok_nvml(nvmlSystemGetCudaDriverVersion_v2(&nvml_cuda), "nvmlSystemGetCudaDriverVersion_v2") &&
      cudaDriverGetVersion(&rt_driver) == cudaSuccess) {
    check(nvml_cuda == rt_driver, "CUDA driver version is cudaDriverGetVersion's", std::to_string(nvml_cuda));
  }
  for (unsigned int i = 0; i < count; ++i) device_checks(i, reference, expect_vgpu);
  bad_arguments(count, expect_vgpu);
  if (expect_vgpu) unsupported(count);
  ok_nvml(nvmlShutdown(), "nvmlShutdown");
  std::printf("%s: %d failure(s)\n", g_failures == 0 ? "ALL PASSED" : "FAILED", g_failures);
  return g_failures == 0 ? 0 : 1;
}
