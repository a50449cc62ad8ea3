// Device enumeration and identity: answered from the same cudaGetDeviceCount
// and cudaGetDeviceProperties the guest's CUDA runtime sees, so NVML and CUDA
// can never disagree about which GPU is which.
#include <cctype>
#include <cstdio>
#include <cstring>
#include <string>

#include "shim/nvml/nvml_state.h"

using namespace vgpu::nvml;

extern "C" nvmlReturn_t nvmlDeviceGetCount_v2(unsigned int* deviceCount) {
  if (const nvmlReturn_t r = require_init(); r != NVML_SUCCESS) return r;
  if (deviceCount == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  return device_count(deviceCount);
}

extern "C" nvmlReturn_t nvmlDeviceGetCount(unsigned int* deviceCount) {
  return nvmlDeviceGetCount_v2(deviceCount);
}

extern "C" nvmlReturn_t nvmlDeviceGetHandleByIndex_v2(unsigned int index, nvmlDevice_t* device) {
  if (const nvmlReturn_t r = require_init(); r != NVML_SUCCESS) return r;
  if (device == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  return handle_of(index, device);
}

extern "C" nvmlReturn_t nvmlDeviceGetHandleByIndex(unsigned int index, nvmlDevice_t* device) {
  return nvmlDeviceGetHandleByIndex_v2(index, device);
}

namespace {

// The first device whose `key(prop)` equals `want`; NOT_FOUND when none does.
template <typename Key>
nvmlReturn_t find_device(const std::string& want, Key key, nvmlDevice_t* device) {
  unsigned int count = 0;
  if (const nvmlReturn_t r = device_count(&count); r != NVML_SUCCESS) return r;
  for (unsigned int i = 0; i < count; ++i) {
    cudaDeviceProp p{};
    if (const nvmlReturn_t r = properties(i, &p); r != NVML_SUCCESS) return r;
    if (key(p) == want) return handle_of(i, device);
  }
  return NVML_ERROR_NOT_FOUND;
}

// "domain:bus:device.function" (domain and function optional, any case, any
// domain width) as numbers; false when it is not one.
bool parse_bus_id(const char* text, unsigned* domain, unsigned* bus, unsigned* dev) {
  unsigned d = 0, b = 0, s = 0, f = 0;
  int used = 0;
  if (std::sscanf(text, "%x:%x:%x.%x%n", &d, &b, &s, &f, &used) == 4 && text[used] == '\0') {
  } else if (std::sscanf(text, "%x:%x:%x%n", &d, &b, &s, &used) == 3 && text[used] == '\0') {
  } else if (std::sscanf(text, "%x:%x.%x%n", &b, &s, &f, &used) == 3 && text[used] == '\0') {
    d = 0;
  } else {
    return false;
  }
  *domain = d;
  *bus = b;
  *dev = s;
  return true;
}

}  // namespace

extern "C" nvmlReturn_t nvmlDeviceGetHandleByUUID(const char* uuid, nvmlDevice_t* device) {
  if (const nvmlReturn_t r = require_init(); r != NVML_SUCCESS) return r;
  if (uuid == nullptr || device == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  std::string want = uuid;
  for (char& c : want) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return find_device(
      want,
      [](const cudaDeviceProp& p) {
        std::string u = uuid_text(p);
        for (char& c : u) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
        return u;
      },
      device);
}

extern "C" nvmlReturn_t nvmlDeviceGetHandleByPciBusId_v2(const char* pciBusId, nvmlDevice_t* device) {
  if (const nvmlReturn_t r = require_init(); r != NVML_SUCCESS) return r;
  if (pciBusId == nullptr || device == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  unsigned domain = 0, bus = 0, dev = 0;
  if (!parse_bus_id(pciBusId, &domain, &bus, &dev)) return NVML_ERROR_INVALID_ARGUMENT;
  char want[NVML_DEVICE_PCI_BUS_ID_BUFFER_SIZE];
  std::snprintf(want, sizeof want, "%08X:%02X:%02X.0", domain, bus, dev);
  return find_device(want, [](const cudaDeviceProp& p) { return bus_id_text(p); }, device);
}

extern "C" nvmlReturn_t nvmlDeviceGetHandleByPciBusId(const char* pciBusId, nvmlDevice_t* device) {
  return nvmlDeviceGetHandleByPciBusId_v2(pciBusId, device);
}

extern "C" nvmlReturn_t nvmlDeviceGetIndex(nvmlDevice_t device, unsigned int* index) {
  unsigned int i = 0;
  if (const nvmlReturn_t r = index_of(device, &i); r != NVML_SUCCESS) return r;
  if (index == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  *index = i;
  return NVML_SUCCESS;
}

// The guest has no /dev/nvidiaN of the host's: the minor number it is given
// is the device's index, which is what /dev/nvidia<index> would be on a host
// showing all its GPUs in order.
extern "C" nvmlReturn_t nvmlDeviceGetMinorNumber(nvmlDevice_t device, unsigned int* minorNumber) {
  return nvmlDeviceGetIndex(device, minorNumber);
}

namespace {
// A device's properties after the handle and output checks every getter makes.
nvmlReturn_t props_of(nvmlDevice_t device, const void* out, cudaDeviceProp* p) {
  unsigned int i = 0;
  if (const nvmlReturn_t r = index_of(device, &i); r != NVML_SUCCESS) return r;
  if (out == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  return properties(i, p);
}
}  // namespace

extern "C" nvmlReturn_t nvmlDeviceGetName(nvmlDevice_t device, char* name, unsigned int length) {
  cudaDeviceProp p{};
  if (const nvmlReturn_t r = props_of(device, name, &p); r != NVML_SUCCESS) return r;
  return copy_out(std::string(p.name, strnlen(p.name, sizeof p.name)), name, length);
}

extern "C" nvmlReturn_t nvmlDeviceGetUUID(nvmlDevice_t device, char* uuid, unsigned int length) {
  cudaDeviceProp p{};
  if (const nvmlReturn_t r = props_of(device, uuid, &p); r != NVML_SUCCESS) return r;
  return copy_out(uuid_text(p), uuid, length);
}

extern "C" nvmlReturn_t nvmlDeviceGetCudaComputeCapability(nvmlDevice_t device, int* major, int* minor) {
  cudaDeviceProp p{};
  if (const nvmlReturn_t r = props_of(device, major, &p); r != NVML_SUCCESS) return r;
  if (minor == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  *major = p.major;
  *minor = p.minor;
  return NVML_SUCCESS;
}

namespace {
nvmlReturn_t fill_pci(nvmlDevice_t device, nvmlPciInfo_t* pci) {
  cudaDeviceProp p{};
  if (const nvmlReturn_t r = props_of(device, pci, &p); r != NVML_SUCCESS) return r;
  unsigned int i = 0;
  index_of(device, &i);  // checked by props_of
  vgpu::protocol::device_status s{};
  if (const nvmlReturn_t r = host_status(static_cast<int>(i), &s); r != NVML_SUCCESS) return r;
  nvmlPciInfo_t out{};
  std::snprintf(out.busIdLegacy, sizeof out.busIdLegacy, "%s", legacy_bus_id_text(p).c_str());
  std::snprintf(out.busId, sizeof out.busId, "%s", bus_id_text(p).c_str());
  out.domain = static_cast<unsigned int>(p.pciDomainID);
  out.bus = static_cast<unsigned int>(p.pciBusID);
  out.device = static_cast<unsigned int>(p.pciDeviceID);
  // Product ids only when the host could read them; 0 (unknown) otherwise.
  if (s.valid & vgpu::protocol::kStatusPciIds) {
    out.pciDeviceId = s.pci_device_id;
    out.pciSubSystemId = s.pci_subsystem_id;
  }
  *pci = out;
  return NVML_SUCCESS;
}
}  // namespace

extern "C" nvmlReturn_t nvmlDeviceGetPciInfo_v3(nvmlDevice_t device, nvmlPciInfo_t* pci) {
  return fill_pci(device, pci);
}

extern "C" nvmlReturn_t nvmlDeviceGetPciInfo_v2(nvmlDevice_t device, nvmlPciInfo_t* pci) {
  return fill_pci(device, pci);
}

extern "C" nvmlReturn_t nvmlDeviceGetPciInfo(nvmlDevice_t device, nvmlPciInfoV1_t* pci) {
  if (pci == nullptr) {  // the handle is checked first, as by every getter
    unsigned int i = 0;
    const nvmlReturn_t r = index_of(device, &i);
    return r != NVML_SUCCESS ? r : NVML_ERROR_INVALID_ARGUMENT;
  }
  nvmlPciInfo_t full{};
  if (const nvmlReturn_t r = fill_pci(device, &full); r != NVML_SUCCESS) return r;
  nvmlPciInfoV1_t out{};
  std::memcpy(out.busId, full.busIdLegacy, sizeof out.busId);
  out.domain = full.domain;
  out.bus = full.bus;
  out.device = full.device;
  out.pciDeviceId = full.pciDeviceId;
  out.pciSubSystemId = full.pciSubSystemId;
  *pci = out;
  return NVML_SUCCESS;
}

// From the marketing name, the way NVIDIA's product lines are named; data
// centre GPUs without a line name (H100, A100...) are NVIDIA's own brand.
extern "C" nvmlReturn_t nvmlDeviceGetBrand(nvmlDevice_t device, nvmlBrandType_t* type) {
  cudaDeviceProp p{};
  if (const nvmlReturn_t r = props_of(device, type, &p); r != NVML_SUCCESS) return r;
  const std::string n(p.name, strnlen(p.name, sizeof p.name));
  const auto has = [&](const char* w) { return n.find(w) != std::string::npos; };
  if (has("GeForce")) *type = NVML_BRAND_GEFORCE;
  else if (has("TITAN")) *type = NVML_BRAND_TITAN;
  else if (has("Quadro")) *type = NVML_BRAND_QUADRO;
  else if (has("Tesla")) *type = NVML_BRAND_TESLA;
  else if (has("RTX")) *type = NVML_BRAND_NVIDIA_RTX;
  else *type = NVML_BRAND_NVIDIA;
  return NVML_SUCCESS;
}

// The mediator keeps the host driver initialised for as long as it runs,
// whether or not a guest has a GPU context: what persistence mode means.
extern "C" nvmlReturn_t nvmlDeviceGetPersistenceMode(nvmlDevice_t device, nvmlEnableState_t* mode) {
  unsigned int i = 0;
  if (const nvmlReturn_t r = index_of(device, &i); r != NVML_SUCCESS) return r;
  if (mode == nullptr) return NVML_ERROR_INVALID_ARGUMENT;
  *mode = NVML_FEATURE_ENABLED;
  return NVML_SUCCESS;
}
