// vgpu-smi: the GPU summary nvidia-smi prints (driver and CUDA versions, each
// GPU's name, bus id, memory use, utilization, temperature, power), read
// through NVML. In a vgpu guest that is vgpu's libnvidia-ml.so.1, so it shows
// the GPU as the VM sees it; on a GPU host it uses NVIDIA's, unchanged.
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>

#include "shim/nvml/nvml_abi.h"

namespace {

void usage(FILE* to, const char* argv0) {
  std::fprintf(to,
               "usage: %s [-L | --list] [-i N | --id N] [-h | --help]\n"
               "  Prints the driver and CUDA versions and, per GPU, its name, PCI bus id,\n"
               "  memory used/total, utilization, temperature and power, as NVML reports\n"
               "  them (vgpu's libnvidia-ml.so.1 in a guest: the VM's view).\n"
               "  -L, --list   one line per GPU: index, name, UUID\n"
               "  -i, --id N   only GPU N\n"
               "  N/A marks what the GPU or the host cannot report.\n"
               "  Exit status: 0, or 1 when NVML fails (the message says why).\n",
               argv0);
}

// A value, or N/A when NVML says the GPU (or host) cannot report it.
std::string or_na(nvmlReturn_t r, const std::string& value) { return r == NVML_SUCCESS ? value : "N/A"; }

void print_list_line(unsigned int i, nvmlDevice_t d) {
  char name[NVML_DEVICE_NAME_V2_BUFFER_SIZE] = "N/A";
  char uuid[NVML_DEVICE_UUID_BUFFER_SIZE] = "N/A";
  if (nvmlDeviceGetName(d, name, sizeof name) != NVML_SUCCESS) std::strcpy(name, "N/A");
  if (nvmlDeviceGetUUID(d, uuid, sizeof uuid) != NVML_SUCCESS) std::strcpy(uuid, "N/A");
  std::printf("GPU %u: %s (UUID: %s)\n", i, name, uuid);
}

void print_gpu(unsigned int i, nvmlDevice_t d) {
  char name[NVML_DEVICE_NAME_V2_BUFFER_SIZE] = {};
  const nvmlReturn_t nr = nvmlDeviceGetName(d, name, sizeof name);
  nvmlPciInfo_t pci{};
  const nvmlReturn_t pr = nvmlDeviceGetPciInfo_v3(d, &pci);
  nvmlMemory_t mem{};
  const nvmlReturn_t mr = nvmlDeviceGetMemoryInfo(d, &mem);
  nvmlUtilization_t util{};
  const nvmlReturn_t ur = nvmlDeviceGetUtilizationRates(d, &util);
  unsigned int temp = 0, power = 0, limit = 0;
  const nvmlReturn_t tr = nvmlDeviceGetTemperature(d, NVML_TEMPERATURE_GPU, &temp);
  const nvmlReturn_t wr = nvmlDeviceGetPowerUsage(d, &power);
  const nvmlReturn_t lr = nvmlDeviceGetEnforcedPowerLimit(d, &limit);
  int major = 0, minor = 0;
  const nvmlReturn_t cr = nvmlDeviceGetCudaComputeCapability(d, &major, &minor);

  constexpr unsigned long long kMiB = 1ull << 20;
  std::printf("GPU %u: %s\n", i, or_na(nr, name).c_str());
  std::printf("  Bus-Id            : %s\n", or_na(pr, pci.busId).c_str());
  std::printf("  Compute Capability: %s\n",
              or_na(cr, std::to_string(major) + "." + std::to_string(minor)).c_str());
  std::printf("  Memory-Usage      : %s\n",
              or_na(mr, std::to_string(mem.used / kMiB) + "MiB / " + std::to_string(mem.total / kMiB) + "MiB")
                  .c_str());
  std::printf("  GPU-Util          : %s\n", or_na(ur, std::to_string(util.gpu) + "%").c_str());
  std::printf("  Memory-Util       : %s\n", or_na(ur, std::to_string(util.memory) + "%").c_str());
  std::printf("  Temperature       : %s\n", or_na(tr, std::to_string(temp) + "C").c_str());
  std::printf("  Power             : %s / %s\n", or_na(wr, std::to_string(power / 1000) + "W").c_str(),
              or_na(lr, std::to_string(limit / 1000) + "W").c_str());
}

}  // namespace

int main(int argc, char** argv) {
  bool list = false;
  long only = -1;
  for (int a = 1; a < argc; ++a) {
    const std::string arg = argv[a];
    if (arg == "-h" || arg == "--help") {
      usage(stdout, argv[0]);
      return 0;
    } else if (arg == "-L" || arg == "--list") {
      list = true;
    } else if ((arg == "-i" || arg == "--id") && a + 1 < argc) {
      char* end = nullptr;
      only = std::strtol(argv[++a], &end, 10);
      if (*end != '\0' || only < 0) {
        std::fprintf(stderr, "vgpu-smi: bad GPU index '%s'\n", argv[a]);
        return 2;
      }
    } else {
      usage(stderr, argv[0]);
      return 2;
    }
  }

  if (const nvmlReturn_t r = nvmlInit_v2(); r != NVML_SUCCESS) {
    std::fprintf(stderr, "vgpu-smi: NVML could not start: %s\n", nvmlErrorString(r));
    return 1;
  }
  int status = 0;
  unsigned int count = 0;
  if (const nvmlReturn_t r = nvmlDeviceGetCount_v2(&count); r != NVML_SUCCESS) {
    std::fprintf(stderr, "vgpu-smi: nvmlDeviceGetCount_v2: %s\n", nvmlErrorString(r));
    nvmlShutdown();
    return 1;
  }
  if (only >= static_cast<long>(count)) {
    std::fprintf(stderr, "vgpu-smi: no GPU %ld (%u found)\n", only, count);
    nvmlShutdown();
    return 1;
  }
  if (!list) {
    char driver[NVML_SYSTEM_DRIVER_VERSION_BUFFER_SIZE] = {};
    const nvmlReturn_t dr = nvmlSystemGetDriverVersion(driver, sizeof driver);
    int cuda = 0;
    const nvmlReturn_t cr = nvmlSystemGetCudaDriverVersion_v2(&cuda);
    std::printf("Driver Version: %s   CUDA Version: %s   GPUs: %u\n", or_na(dr, driver).c_str(),
                or_na(cr, std::to_string(cuda / 1000) + "." + std::to_string(cuda % 1000 / 10)).c_str(), count);
  }
  for (unsigned int i = 0; i < count; ++i) {
    if (only >= 0 && static_cast<unsigned long>(only) != i) continue;
    nvmlDevice_t d = nullptr;
    if (const nvmlReturn_t r = nvmlDeviceGetHandleByIndex_v2(i, &d); r != NVML_SUCCESS) {
      std::fprintf(stderr, "vgpu-smi: GPU %u: %s\n", i, nvmlErrorString(r));
      status = 1;
      continue;
    }
    if (list) print_list_line(i, d);
    else print_gpu(i, d);
  }
  nvmlShutdown();
  return status;
}
