#include "shim/transport/module_calls.h"

#include <algorithm>
#include <atomic>
#include <cstring>

#include <elf.h>
#include <fatbinary_section.h>

#include "api_ids.h"
#include "api_wire.h"
#include "shim/transport/guest_call.h"
#include "shim/transport/guest_log.h"

namespace vgpu::shim {

namespace {

// The fatbin container header (the part vgpu needs: its total size).
struct fatbin_header {
  uint32_t magic;
  uint16_t version;
  uint16_t header_size;
  uint64_t fat_size;
};
constexpr uint32_t kFatbinMagic = 0xBA55ED50;

uint64_t fatbin_size(const uint8_t* p) {
  fatbin_header h;
  std::memcpy(&h, p, sizeof h);
  return h.magic == kFatbinMagic ? h.header_size + h.fat_size : 0;
}

// The end of the last thing an ELF file holds: section headers, program
// headers or a section's bytes (cubins put the section headers last, but
// nothing says so).
uint64_t elf_size(const uint8_t* p) {
  Elf64_Ehdr eh;
  std::memcpy(&eh, p, sizeof eh);
  if (eh.e_ident[EI_CLASS] != ELFCLASS64) return 0;
  uint64_t end = std::max<uint64_t>(sizeof eh, eh.e_shoff + uint64_t{eh.e_shnum} * eh.e_shentsize);
  end = std::max<uint64_t>(end, eh.e_phoff + uint64_t{eh.e_phnum} * eh.e_phentsize);
  for (unsigned i = 0; i < eh.e_shnum && eh.e_shentsize >= sizeof(Elf64_Shdr); ++i) {
    Elf64_Shdr sh;
    std::memcpy(&sh, p + eh.e_shoff + uint64_t{i} * eh.e_shentsize, sizeof sh);
    if (sh.sh_type != SHT_NOBITS) end = std::max<uint64_t>(end, sh.sh_offset + sh.sh_size);
  }
  return end;
}

// Sends a name through the data area and gets fixed results back (and, for
// vgpuFunctionGet, the layout the host wrote after the name).
template <typename Req, typename Rep>
cudaError_t named_call(protocol::call_id id, Req& req, protocol::data_ref* name_field, const std::string& name,
                       Rep* rep, uint64_t layout_bytes = 0, protocol::data_ref* layout_field = nullptr,
                       std::vector<uint8_t>* layout_out = nullptr) {
  channel_guard g;
  if (g.status() != cudaSuccess) return g.status();
  if (name.size() + 1 + layout_bytes + 8 > g->data_size()) return cudaErrorInvalidValue;
  std::memcpy(g->data(), name.c_str(), name.size() + 1);
  *name_field = protocol::data_ref{0, name.size() + 1};
  const uint64_t layout_off = (name.size() + 1 + 7) / 8 * 8;
  if (layout_field) *layout_field = protocol::data_ref{layout_off, layout_bytes};
  uint64_t seq = 0;
  cudaError_t st = g->submit(static_cast<uint16_t>(id), 0, &req, Req::wire_size(), nullptr, 0, name.size() + 1, &seq);
  if (st == cudaSuccess) st = g->wait(seq, rep, Rep::wire_size());
  if (st == cudaSuccess && layout_out) layout_out->assign(g->data() + layout_off, g->data() + layout_off + layout_bytes);
  return st;
}

constexpr uint32_t kMaxParams = 4096;  // a 32 KiB parameter block of 8-byte params

}  // namespace

uint64_t next_module_id() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

uint64_t module_image_size(const void* image, const uint8_t** bytes) {
  if (!image) return 0;
  const auto* p = static_cast<const uint8_t*>(image);
  uint32_t magic = 0;
  std::memcpy(&magic, p, sizeof magic);
  if (magic == FATBINC_MAGIC) {
    const auto* w = static_cast<const __fatBinC_Wrapper_t*>(image);
    if (!w->data) return 0;
    *bytes = reinterpret_cast<const uint8_t*>(w->data);
    return fatbin_size(*bytes);
  }
  *bytes = p;
  if (magic == kFatbinMagic) return fatbin_size(p);
  if (std::memcmp(p, ELFMAG, SELFMAG) == 0) return elf_size(p);
  return std::strlen(reinterpret_cast<const char*>(p)) + 1;  // PTX text
}

cudaError_t upload_module(uint64_t module, const uint8_t* image, uint64_t size) {
  if (size == 0) return cudaErrorInvalidKernelImage;
  channel_guard g;
  if (g.status() != cudaSuccess) return g.status();
  const uint64_t chunk = g->data_size();
  cudaError_t st = cudaSuccess;
  for (uint64_t off = 0; off < size && st == cudaSuccess; off += chunk) {
    const uint64_t n = std::min(chunk, size - off);
    std::memcpy(g->data(), image + off, n);
    wire::vgpuModuleLoad_req req{};
    req.module = module;
    req.offset = off;
    req.total = size;
    req.image = protocol::data_ref{0, n};
    uint64_t seq = 0;
    st = g->submit(static_cast<uint16_t>(protocol::call_id::vgpuModuleLoad), 0, &req,
                   wire::vgpuModuleLoad_req::wire_size(), nullptr, 0, n, &seq);
    if (st == cudaSuccess) st = g->wait(seq, nullptr, 0);
  }
  return st;
}

cudaError_t unload_module(uint64_t module) {
  wire::vgpuModuleUnload_req req{};
  req.module = module;
  return guest_call(static_cast<uint16_t>(protocol::call_id::vgpuModuleUnload), &req,
                    wire::vgpuModuleUnload_req::wire_size(), nullptr, 0, 0);
}

cudaError_t get_function(uint64_t module, const std::string& name, function_info* out) {
  wire::vgpuFunctionGet_req req{};
  req.module = module;
  wire::vgpuFunctionGet_rep rep{};
  std::vector<uint8_t> layout;
  cudaError_t st = named_call(protocol::call_id::vgpuFunctionGet, req, &req.name, name, &rep, kMaxParams * 8ull,
                              &req.layout, &layout);
  if (st != cudaSuccess) return st;
  if (rep.paramCount > kMaxParams) return cudaErrorInvalidValue;
  out->layout.resize(rep.paramCount);
  uint32_t end = 0;
  for (uint32_t i = 0; i < rep.paramCount; ++i) {
    std::memcpy(&out->layout[i].first, layout.data() + 8 * i, 4);
    std::memcpy(&out->layout[i].second, layout.data() + 8 * i + 4, 4);
    end = std::max(end, out->layout[i].first + out->layout[i].second);
  }
  out->param_bytes = end;
  out->function = rep.function;
  return cudaSuccess;
}

cudaError_t get_global(uint64_t module, const std::string& name, uint64_t* dptr, uint64_t* bytes) {
  wire::vgpuModuleGetGlobal_req req{};
  req.module = module;
  wire::vgpuModuleGetGlobal_rep rep{};
  const cudaError_t st = named_call(protocol::call_id::vgpuModuleGetGlobal, req, &req.name, name, &rep);
  if (st != cudaSuccess) return st;
  *dptr = rep.dptr;
  *bytes = rep.bytes;
  return cudaSuccess;
}

cudaError_t post_launch(uint64_t function, const launch_shape& s, const void* params, uint32_t size) {
  wire::vgpuLaunchKernel_req req{};
  req.function = function;
  req.gridX = s.grid[0];
  req.gridY = s.grid[1];
  req.gridZ = s.grid[2];
  req.blockX = s.block[0];
  req.blockY = s.block[1];
  req.blockZ = s.block[2];
  req.sharedMem = s.shared_mem;
  req.stream = s.stream;
  req.clusterX = s.cluster[0];
  req.clusterY = s.cluster[1];
  req.clusterZ = s.cluster[2];
  req.launchFlags = s.flags;
  return guest_post(static_cast<uint16_t>(protocol::call_id::vgpuLaunchKernel), &req,
                    wire::vgpuLaunchKernel_req::wire_size(), params, size);
}

}  // namespace vgpu::shim
