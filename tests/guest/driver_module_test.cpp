// Modules, libraries, functions, launches and occupancy through the driver
// API, with images nvcc built from tests/kernels/driver_kernels.cu (a fatbin
// and bare PTX, paths compiled in). On a GPU the kernels run and their results
// are checked; on the reference executor (--reference) launches are recorded,
// and the records are checked: parameters carried byte for byte, an `extra`
// buffer identical to kernelParams, launch attributes carried.
#include <cuda.h>
#include <dlfcn.h>

#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include <unistd.h>

#include "driver_check.h"
#include "launch_record.h"  // actors/executor: the record format of vgpuDebugLaunchRecord

namespace driver_test {

namespace {

std::vector<char> read_all(const char* path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<char>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// The fatbin wrapper nvcc puts around an embedded fatbin (fatbinary_section.h).
struct fatbin_wrapper {
  int magic;
  int version;
  const unsigned long long* data;
  void* filename_or_fatbins;
};

using record_fn = int (*)(unsigned index, void* out, size_t cap, size_t* size);

struct record {
  vgpu::host::launch_record_header h{};
  std::string name;
  std::vector<uint8_t> params;
};

bool read_record(unsigned index, record* r) {
  static auto fn = reinterpret_cast<record_fn>(dlsym(RTLD_DEFAULT, "vgpuDebugLaunchRecord"));
  if (!fn) return false;
  std::vector<uint8_t> buf(64 * 1024);
  size_t size = 0;
  if (fn(index, buf.data(), buf.size(), &size) != 0 || size < sizeof r->h) return false;
  std::memcpy(&r->h, buf.data(), sizeof r->h);
  if (size != sizeof r->h + r->h.name_len + r->h.param_len) return false;
  r->name.assign(reinterpret_cast<const char*>(buf.data() + sizeof r->h), r->h.name_len);
  while (!r->name.empty() && r->name.back() == '\0') r->name.pop_back();
  const uint8_t* p = buf.data() + sizeof r->h + r->h.name_len;
  r->params.assign(p, p + r->h.param_len);
  return true;
}

// The block cuLaunchKernel must send for `args`, packed by cuFuncGetParamInfo.
std::vector<uint8_t> packed(CUfunction f, void** args, size_t n) {
  std::vector<uint8_t> block;
  for (size_t i = 0; i < n; ++i) {
    size_t off = 0, size = 0;
    if (cuFuncGetParamInfo(f, i, &off, &size) != CUDA_SUCCESS) return {};
    if (block.size() < off + size) block.resize(off + size, 0);
    std::memcpy(block.data() + off, args[i], size);
  }
  return block;
}

size_t block_to_smem(int block) { return static_cast<size_t>(block) * 4; }

// A test image beside the program (a device package puts them there), else
// where the build made it.
std::string image_path(const char* built) {
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  if (n > 0) {
    self[n] = '\0';
    std::string dir(self);
    dir.resize(dir.rfind('/') + 1);
    const std::string built_s(built);
    const std::string beside = dir + built_s.substr(built_s.rfind('/') + 1);
    if (access(beside.c_str(), R_OK) == 0) return beside;
  }
  return built;
}

}  // namespace

void module_checks(CUdevice dev, bool reference) {
  const std::string fatbin_path = image_path(VGPU_DRIVER_FATBIN);
  const std::vector<char> fatbin = read_all(fatbin_path.c_str());
  std::vector<char> ptx = read_all(image_path(VGPU_DRIVER_PTX).c_str());
  check(!fatbin.empty() && !ptx.empty(), "module: test images found", fatbin_path.c_str());
  if (fatbin.empty() || ptx.empty()) return;
  ptx.push_back('\0');
  unsigned records = 0;  // launches this process made so far (the records are numbered from 0)

  // Raw fatbin (8-byte aligned, as embedded ones are).
  std::vector<unsigned long long> fat((fatbin.size() + 7) / 8, 0);
  std::memcpy(fat.data(), fatbin.data(), fatbin.size());
  CUmodule mod = nullptr;
  if (!ok_cu(cuModuleLoadData(&mod, fat.data()), "module: cuModuleLoadData of a fatbin")) return;
  CUfunction axpy = nullptr, mixed = nullptr, count = nullptr;
  ok_cu(cuModuleGetFunction(&axpy, mod, "vgpu_axpy"), "module: cuModuleGetFunction vgpu_axpy");
  ok_cu(cuModuleGetFunction(&mixed, mod, "vgpu_mixed"), "module: cuModuleGetFunction vgpu_mixed");
  ok_cu(cuModuleGetFunction(&count, mod, "vgpu_count"), "module: cuModuleGetFunction vgpu_count");
  CUfunction none = nullptr;
  check(cuModuleGetFunction(&none, mod, "vgpu_no_such_kernel") == CUDA_ERROR_NOT_FOUND,
        "module: an unknown kernel name is CUDA_ERROR_NOT_FOUND");
  if (!axpy || !mixed || !count) return;

  // Layout and attributes.
  size_t off = 0, size = 0;
  ok_cu(cuFuncGetParamInfo(mixed, 1, &off, &size), "module: cuFuncGetParamInfo(vgpu_mixed, 1)");
  check(off == 8 && size == 8, "module: the double after a char sits at offset 8",
        std::to_string(off) + "/" + std::to_string(size));
  check(cuFuncGetParamInfo(mixed, 4, &off, &size) == CUDA_ERROR_INVALID_VALUE,
        "module: cuFuncGetParamInfo past the last parameter is CUDA_ERROR_INVALID_VALUE");
  int max_threads = 0;
  ok_cu(cuFuncGetAttribute(&max_threads, CU_FUNC_ATTRIBUTE_MAX_THREADS_PER_BLOCK, axpy), "module: cuFuncGetAttribute");
  check(max_threads >= 256 && max_threads <= 1024, "module: max threads per block is sane", std::to_string(max_threads));
  ok_cu(cuFuncSetAttribute(axpy, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, 64 << 10),
        "module: cuFuncSetAttribute(MAX_DYNAMIC_SHARED_SIZE_BYTES, 64 KiB)");
  int dyn = 0;
  ok_cu(cuFuncGetAttribute(&dyn, CU_FUNC_ATTRIBUTE_MAX_DYNAMIC_SHARED_SIZE_BYTES, axpy),
        "module: read the dynamic shared size back");
  check(dyn == (64 << 10), "module: the dynamic shared size was set", std::to_string(dyn));
  if (g_expect_vgpu) {  // NVIDIA's driver may well crash on these; vgpu must not
    check(cuFuncGetAttribute(&dyn, CU_FUNC_ATTRIBUTE_NUM_REGS, reinterpret_cast<CUfunction>(&dyn)) ==
              CUDA_ERROR_INVALID_HANDLE,
          "module: a forged function handle is CUDA_ERROR_INVALID_HANDLE");
  }

  // The module variable.
  CUdeviceptr counter = 0;
  size_t counter_size = 0;
  ok_cu(cuModuleGetGlobal(&counter, &counter_size, mod, "vgpu_counter"), "module: cuModuleGetGlobal vgpu_counter");
  check(counter != 0 && counter_size == sizeof(int), "module: the variable has an address and 4 bytes");
  const int zero = 0;
  ok_cu(cuMemcpyHtoD(counter, &zero, sizeof zero), "module: write the variable");

  // Launches: kernelParams, then the same block through `extra`.
  const int n = 1000;
  std::vector<float> x(n), y(n);
  for (int i = 0; i < n; ++i) {
    x[i] = static_cast<float>(i);
    y[i] = 1.0f;
  }
  CUdeviceptr dx = 0, dy = 0;
  ok_cu(cuMemAlloc(&dx, n * sizeof(float)), "module: cuMemAlloc x");
  ok_cu(cuMemAlloc(&dy, n * sizeof(float)), "module: cuMemAlloc y");
  cuMemcpyHtoD(dx, x.data(), n * sizeof(float));
  cuMemcpyHtoD(dy, y.data(), n * sizeof(float));
  float a = 2.5f;
  int nn = n;
  void* args[] = {&a, &dx, &dy, &nn};
  ok_cu(cuLaunchKernel(axpy, (n + 255) / 256, 1, 1, 256, 1, 1, 0, nullptr, args, nullptr),
        "module: cuLaunchKernel with kernelParams");
  const std::vector<uint8_t> block = packed(axpy, args, 4);
  check(block.size() == 28, "module: vgpu_axpy's parameter block is 28 bytes", std::to_string(block.size()));
  std::vector<uint8_t> buffer = block;
  size_t buffer_size = buffer.size();
  void* extra[] = {CU_LAUNCH_PARAM_BUFFER_POINTER, buffer.data(), CU_LAUNCH_PARAM_BUFFER_SIZE, &buffer_size,
                   CU_LAUNCH_PARAM_END};
  ok_cu(cuLaunchKernel(axpy, (n + 255) / 256, 1, 1, 256, 1, 1, 0, nullptr, nullptr, extra),
        "module: cuLaunchKernel with extra (a packed buffer)");
  check(cuLaunchKernel(axpy, 1, 1, 1, 2048, 1, 1, 0, nullptr, args, nullptr) == CUDA_ERROR_INVALID_VALUE,
        "module: a block of 2048 threads is CUDA_ERROR_INVALID_VALUE");
  check(cuLaunchKernel(axpy, 1, 1, 1, 32, 1, 1, 0, nullptr, args, extra) == CUDA_ERROR_INVALID_VALUE,
        "module: kernelParams and extra together are CUDA_ERROR_INVALID_VALUE");
  if (reference) {
    record r1, r2;
    const bool got = read_record(records, &r1) && read_record(records + 1, &r2);
    check(got, "module: two launch records");
    if (got) {
      check(r1.name == "vgpu_axpy" && r1.h.grid[0] == 4 && r1.h.block[0] == 256, "module: record 1 has name and shape",
            r1.name);
      check(r1.params == block, "module: kernelParams were packed by the layout, byte for byte");
      check(r2.params == r1.params, "module: the extra buffer arrived identical to kernelParams");
    }
  }
  records += 2;
  if (!reference) {
    ok_cu(cuCtxSynchronize(), "module: cuCtxSynchronize after the launches");
    std::vector<float> out(n, 0.0f);
    ok_cu(cuMemcpyDtoH(out.data(), dy, n * sizeof(float)), "module: read y");
    bool right = true;
    for (int i = 0; i < n; ++i) right &= out[i] == 1.0f + 2.0f * 2.5f * static_cast<float>(i);
    check(right, "module: y = 1 + 2 * 2.5 * x after the two launches (kernelParams and extra)");
  }

  // Mixed parameters through extra with padding (the caller's packing).
  CUdeviceptr dout = 0;
  ok_cu(cuMemAlloc(&dout, 3 * sizeof(unsigned long long)), "module: cuMemAlloc out");
  char c = 7;
  double d = 1234.0;
  short s = -3;
  void* margs[] = {&c, &d, &s, &dout};
  ok_cu(cuLaunchKernel(mixed, 1, 1, 1, 32, 1, 1, 0, nullptr, margs, nullptr), "module: launch vgpu_mixed");
  if (reference) {
    record r;
    check(read_record(records, &r) && r.params == packed(mixed, margs, 4),
          "module: vgpu_mixed's padded block arrived byte for byte");
  } else {
    unsigned long long got[3] = {};
    cuCtxSynchronize();
    ok_cu(cuMemcpyDtoH(got, dout, sizeof got), "module: read vgpu_mixed's output");
    check(got[0] == 7 && got[1] == 1234 && got[2] == static_cast<unsigned long long>(static_cast<long long>(-3)),
          "module: vgpu_mixed saw char, double and short right");
  }
  records += 1;

  // cuLaunchKernelEx: cluster, cooperative, programmatic serialization, by value.
  CUlaunchAttribute attrs[3];
  std::memset(attrs, 0, sizeof attrs);
  attrs[0].id = CU_LAUNCH_ATTRIBUTE_CLUSTER_DIMENSION;
  attrs[0].value.clusterDim.x = 2;
  attrs[0].value.clusterDim.y = 1;
  attrs[0].value.clusterDim.z = 1;
  attrs[1].id = CU_LAUNCH_ATTRIBUTE_PROGRAMMATIC_STREAM_SERIALIZATION;
  attrs[1].value.programmaticStreamSerializationAllowed = 1;
  CUlaunchConfig cfg{};
  cfg.gridDimX = 4;
  cfg.gridDimY = 1;
  cfg.gridDimZ = 1;
  cfg.blockDimX = 64;
  cfg.blockDimY = 1;
  cfg.blockDimZ = 1;
  cfg.attrs = attrs;
  cfg.numAttrs = 2;
  int add = 5;
  void* cargs[] = {&add};
  ok_cu(cuLaunchKernelEx(&cfg, count, cargs, nullptr), "module: cuLaunchKernelEx with a cluster of 2");
  ok_cu(cuLaunchCooperativeKernel(count, 2, 1, 1, 32, 1, 1, 0, nullptr, cargs), "module: cuLaunchCooperativeKernel");
  if (reference) {
    record r1, r2;
    const bool got = read_record(records, &r1) && read_record(records + 1, &r2);
    check(got && r1.h.cluster[0] == 2 && r1.h.cluster[1] == 1 && r1.h.cluster[2] == 1,
          "module: the cluster dimensions were carried");
    check(got && (r1.h.launch_flags & 2u) != 0, "module: programmatic stream serialization was carried");
    check(got && (r2.h.launch_flags & 1u) != 0, "module: the cooperative flag was carried");
  } else {
    int total = -1;
    cuCtxSynchronize();
    ok_cu(cuMemcpyDtoH(&total, counter, sizeof total), "module: read the counter");
    check(total == 6 * 5, "module: 4 cluster blocks + 2 cooperative blocks added 5 each", std::to_string(total));
  }
  records += 2;

  // Occupancy.
  int blocks = 0;
  ok_cu(cuOccupancyMaxActiveBlocksPerMultiprocessor(&blocks, axpy, 256, 0), "module: cuOccupancyMaxActiveBlocks");
  check(blocks >= 1, "module: at least one block of 256 fits an SM", std::to_string(blocks));
  int min_grid = 0, best = 0;
  ok_cu(cuOccupancyMaxPotentialBlockSize(&min_grid, &best, axpy, block_to_smem, 0, 0),
        "module: cuOccupancyMaxPotentialBlockSize (callback in the guest)");
  check(best > 0 && best <= 1024 && best % 32 == 0 && min_grid > 0, "module: a potential block size and grid",
        std::to_string(best) + "/" + std::to_string(min_grid));
  int clusters = 0;
  cfg.numAttrs = 1;  // the cluster only
  ok_cu(cuOccupancyMaxActiveClusters(&clusters, count, &cfg), "module: cuOccupancyMaxActiveClusters");
  check(clusters >= 1, "module: at least one cluster of 2 fits", std::to_string(clusters));

  // The same image as PTX text, with JIT options (outputs answered).
  CUmodule pmod = nullptr;
  CUjit_option opts[] = {CU_JIT_INFO_LOG_BUFFER_SIZE_BYTES, CU_JIT_INFO_LOG_BUFFER};
  char log[256] = {};
  void* vals[] = {reinterpret_cast<void*>(sizeof log), log};
  if (ok_cu(cuModuleLoadDataEx(&pmod, ptx.data(), 2, opts, vals), "module: cuModuleLoadDataEx of PTX text")) {
    CUfunction pf = nullptr;
    ok_cu(cuModuleGetFunction(&pf, pmod, "vgpu_axpy"), "module: vgpu_axpy in the PTX module");
    ok_cu(cuModuleUnload(pmod), "module: cuModuleUnload of the PTX module");
    if (g_expect_vgpu) {
      check(cuLaunchKernel(pf, 1, 1, 1, 32, 1, 1, 0, nullptr, args, nullptr) == CUDA_ERROR_INVALID_HANDLE,
            "module: a function of an unloaded module is CUDA_ERROR_INVALID_HANDLE");
    }
  }

  // cuModuleLoadFatBinary takes a fatbin container; NVIDIA's driver refuses a
  // wrapper (what nvcc embeds) there with CUDA_ERROR_INVALID_IMAGE (measured on
  // the H100), and so does vgpu.
  CUmodule fmod = nullptr;
  if (ok_cu(cuModuleLoadFatBinary(&fmod, fat.data()), "module: cuModuleLoadFatBinary of a fatbin")) {
    CUfunction ff = nullptr;
    ok_cu(cuModuleGetFunction(&ff, fmod, "vgpu_count"), "module: vgpu_count in the fatbin");
    ok_cu(cuModuleUnload(fmod), "module: unload the fatbin module");
  }
  fatbin_wrapper w{0x466243B1, 1, fat.data(), nullptr};
  CUmodule wmod = nullptr;
  const CUresult wr = cuModuleLoadFatBinary(&wmod, &w);
  check(wr == CUDA_ERROR_INVALID_IMAGE, "module: cuModuleLoadFatBinary refuses a wrapper as the driver does",
        wr == CUDA_SUCCESS ? "accepted" : "another error");
  if (wr == CUDA_SUCCESS) cuModuleUnload(wmod);
  // An ELF header and nothing behind it (zeros: no sections, no code).
  alignas(8) unsigned char garbage[256] = {0x7f, 'E', 'L', 'F', 2, 1, 1};
  CUmodule bad = nullptr;
  check(cuModuleLoadData(&bad, garbage) != CUDA_SUCCESS, "module: a broken image is refused");

  // Libraries and kernels.
  CUlibrary lib = nullptr;
  if (ok_cu(cuLibraryLoadData(&lib, fat.data(), nullptr, nullptr, 0, nullptr, nullptr, 0), "module: cuLibraryLoadData")) {
    CUkernel k = nullptr;
    CUfunction kf = nullptr;
    CUmodule lm = nullptr;
    ok_cu(cuLibraryGetKernel(&k, lib, "vgpu_axpy"), "module: cuLibraryGetKernel");
    ok_cu(cuKernelGetFunction(&kf, k), "module: cuKernelGetFunction");
    ok_cu(cuLibraryGetModule(&lm, lib), "module: cuLibraryGetModule");
    size_t koff = 1, ksize = 0;
    ok_cu(cuKernelGetParamInfo(k, 1, &koff, &ksize), "module: cuKernelGetParamInfo");
    check(koff == 8 && ksize == 8, "module: vgpu_axpy's x sits at offset 8, 8 bytes");
    CUdeviceptr lg = 0;
    size_t lgs = 0;
    ok_cu(cuLibraryGetGlobal(&lg, &lgs, lib, "vgpu_counter"), "module: cuLibraryGetGlobal");
    check(lg != 0 && lg != counter && lgs == sizeof(int), "module: the library's variable is its own");
    ok_cu(cuLaunchKernel(kf, (n + 255) / 256, 1, 1, 256, 1, 1, 0, nullptr, args, nullptr),
          "module: launch a library kernel");
    if (reference) {
      record r;
      check(read_record(records, &r) && r.params == block, "module: the library kernel's launch carried its block");
    } else {
      std::vector<float> out(n, 0.0f);
      cuCtxSynchronize();
      cuMemcpyDtoH(out.data(), dy, n * sizeof(float));
      bool right = true;
      for (int i = 0; i < n; ++i) right &= out[i] == 1.0f + 3.0f * 2.5f * static_cast<float>(i);
      check(right, "module: the library kernel ran (a third axpy)");
    }
    records += 1;
    ok_cu(cuLibraryUnload(lib), "module: cuLibraryUnload");
  }

  // A kernel writing VMM memory: a mapping is as good a kernel argument as cuMemAlloc's.
  CUmemAllocationProp prop{};
  prop.type = CU_MEM_ALLOCATION_TYPE_PINNED;
  prop.location.type = CU_MEM_LOCATION_TYPE_DEVICE;
  prop.location.id = dev;
  size_t gran = 0;
  CUdeviceptr va = 0;
  CUmemGenericAllocationHandle h = 0;
  if (ok_cu(cuMemGetAllocationGranularity(&gran, &prop, CU_MEM_ALLOC_GRANULARITY_MINIMUM), "module: granularity") &&
      ok_cu(cuMemAddressReserve(&va, 2 * gran, 0, 0, 0), "module: reserve for a VMM buffer") &&
      ok_cu(cuMemCreate(&h, gran, &prop, 0), "module: cuMemCreate for a VMM buffer") &&
      ok_cu(cuMemMap(va, gran, 0, h, 0), "module: map it")) {
    CUmemAccessDesc access{};
    access.location = prop.location;
    access.flags = CU_MEM_ACCESS_FLAGS_PROT_READWRITE;
    ok_cu(cuMemSetAccess(va, gran, &access, 1), "module: set access");
    cuMemcpyHtoD(va, y.data(), n * sizeof(float));  // y = 1
    void* vargs[] = {&a, &dx, &va, &nn};
    ok_cu(cuLaunchKernel(axpy, (n + 255) / 256, 1, 1, 256, 1, 1, 0, nullptr, vargs, nullptr),
          "module: launch with a VMM buffer as y");
    if (reference) {
      record r;
      check(read_record(records, &r) && r.params == packed(axpy, vargs, 4),
            "module: the VMM pointer was carried as the kernel argument");
    } else {
      std::vector<float> out(n, 0.0f);
      cuCtxSynchronize();
      ok_cu(cuMemcpyDtoH(out.data(), va, n * sizeof(float)), "module: read the VMM buffer");
      bool right = true;
      for (int i = 0; i < n; ++i) right &= out[i] == 1.0f + 2.5f * static_cast<float>(i);
      check(right, "module: the kernel wrote y = 1 + 2.5 x into VMM memory");
    }
    records += 1;
    ok_cu(cuMemUnmap(va, gran), "module: unmap the VMM buffer");
  }
  if (h) cuMemRelease(h);
  if (va) cuMemAddressFree(va, 2 * gran);

  cuMemFree(dx);
  cuMemFree(dy);
  cuMemFree(dout);
  ok_cu(cuModuleUnload(mod), "module: cuModuleUnload");
  if (g_expect_vgpu) {
    check(cuModuleUnload(mod) == CUDA_ERROR_INVALID_HANDLE, "module: unloading twice is CUDA_ERROR_INVALID_HANDLE");
  }
}

}  // namespace driver_test
