// The cubin reader of the reference executor (actors/executor/fatbin/cubin.*,
// elf.*, nv_info.*), on real nvcc output made at build time from
// cubin_samples.cu (see cubin_tests.cmake): a cubin-only fatbin must give the
// kernels, parameter layouts and variables that the PTX of the same source
// gives, compressed or not; malformed cubins are refused with a reason.
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "actors/executor/fatbin/cubin.h"
#include "actors/executor/fatbin/fatbin.h"
#include "actors/executor/fatbin/module_info.h"
#include "actors/executor/fatbin/nv_info.h"

namespace vgpu::fatbin {
namespace {

using bytes = std::vector<uint8_t>;
using layout = std::vector<std::pair<uint32_t, uint32_t>>;

template <typename T>
T get(const bytes& b, size_t at) {
  T v{};
  if (at + sizeof v <= b.size()) std::memcpy(&v, b.data() + at, sizeof v);
  return v;
}

template <typename T>
void put(bytes* b, size_t at, T v) {
  ASSERT_LE(at + sizeof v, b->size());
  std::memcpy(b->data() + at, &v, sizeof v);
}

bytes sample(const std::string& name) {
  const std::string path = std::string(VGPU_CUBIN_SAMPLES_DIR) + "/" + name;
  std::ifstream f(path, std::ios::binary);
  bytes b((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
  EXPECT_FALSE(b.empty()) << path << " is missing or empty: it is built by nvcc with the test";
  return b;
}

module_info parse_ok(const bytes& image) {
  module_info m;
  std::string why;
  EXPECT_TRUE(parse_fatbin(image.data(), image.size(), &m, &why)) << why;
  return m;
}

std::string fatbin_error(const bytes& image) {
  module_info m;
  std::string why;
  EXPECT_FALSE(parse_fatbin(image.data(), image.size(), &m, &why));
  EXPECT_FALSE(why.empty());
  return why;
}

std::string cubin_error(const bytes& cubin) {
  module_info m;
  std::string why;
  EXPECT_FALSE(parse_cubin(cubin.data(), cubin.size(), &m, &why));
  EXPECT_FALSE(why.empty());
  return why;
}

// Kernels and variables keyed by name: the PTX and the cubin list them in
// different orders.
struct kernel_shape {
  layout params;
  uint32_t param_bytes = 0;
  bool operator==(const kernel_shape& o) const {
    return params == o.params && param_bytes == o.param_bytes;
  }
};
std::ostream& operator<<(std::ostream& os, const kernel_shape& k) {
  os << "{";
  for (const auto& [offset, size] : k.params) os << "(" << offset << "," << size << ")";
  return os << " block " << k.param_bytes << "}";
}

std::map<std::string, kernel_shape> kernels_of(const module_info& m) {
  std::map<std::string, kernel_shape> out;
  for (const kernel_info& k : m.kernels) {
    kernel_shape s;
    for (const param_slot& p : k.params) s.params.emplace_back(p.offset, p.size);
    s.param_bytes = k.param_bytes;
    EXPECT_TRUE(out.emplace(k.name, s).second) << "kernel " << k.name << " listed twice";
  }
  return out;
}

std::map<std::string, std::pair<uint64_t, bool>> globals_of(const module_info& m) {
  std::map<std::string, std::pair<uint64_t, bool>> out;
  for (const global_info& g : m.globals) {
    EXPECT_TRUE(out.emplace(g.name, std::make_pair(g.size, g.constant)).second) << g.name;
  }
  return out;
}

const kernel_shape& kernel(const std::map<std::string, kernel_shape>& ks, const std::string& name) {
  static const kernel_shape missing{{{UINT32_MAX, UINT32_MAX}}, UINT32_MAX};
  const auto it = ks.find(name);
  EXPECT_NE(it, ks.end()) << "no kernel " << name;
  return it == ks.end() ? missing : it->second;
}

// What a fatbin holds, read here independently of the parser, so that each
// test can first check that the sample is what it claims to be.
struct entry_view {
  uint16_t kind = 0;  // 1 PTX, 2 cubin
  uint32_t arch = 0;
  uint64_t flags = 0;
  size_t payload_at = 0;
  uint64_t payload_size = 0;
};

std::vector<entry_view> entries_of(const bytes& image) {
  std::vector<entry_view> out;
  if (image.size() < 16 || get<uint32_t>(image, 0) != kFatbinMagic) return out;
  const size_t end = std::min<uint64_t>(image.size(), 16 + get<uint64_t>(image, 8));
  for (size_t pos = get<uint16_t>(image, 6); pos + 64 <= end;) {
    entry_view e;
    e.kind = get<uint16_t>(image, pos);
    e.arch = get<uint32_t>(image, pos + 0x1c);
    e.flags = get<uint64_t>(image, pos + 0x28);
    e.payload_at = pos + get<uint32_t>(image, pos + 4);
    e.payload_size = get<uint64_t>(image, pos + 8);
    out.push_back(e);
    pos = e.payload_at + static_cast<size_t>(e.payload_size);
  }
  return out;
}

constexpr uint64_t kLz4Flag = 0x2000;
constexpr uint64_t kZstdFlag = 0x8000;

// Cubin-only, every entry of the given archs, compressed as `flag` says.
void expect_cubins_only(const bytes& image, std::vector<uint32_t> archs, uint64_t flag) {
  std::vector<uint32_t> seen;
  for (const entry_view& e : entries_of(image)) {
    EXPECT_EQ(e.kind, 2) << "the sample holds an entry of kind " << e.kind << " (1 is PTX)";
    EXPECT_EQ(e.flags & (kLz4Flag | kZstdFlag), flag) << "sm_" << e.arch;
    seen.push_back(e.arch);
  }
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen, archs);
}

// --- a cubin-only fatbin reads as its PTX does ----------------------------------------

TEST(CubinReal, SameKernelsLayoutsAndVariablesAsThePtx) {
  const bytes ptx_image = sample("samples_ptx.fatbin");
  const bytes cubin_image = sample("samples_sm90.fatbin");
  for (const entry_view& e : entries_of(ptx_image)) EXPECT_EQ(e.kind, 1);
  expect_cubins_only(cubin_image, {90}, 0);
  const module_info ptx = parse_ok(ptx_image);
  const module_info cubin = parse_ok(cubin_image);
  EXPECT_EQ(ptx.source, "compute_90 PTX");
  EXPECT_EQ(cubin.source, "sm_90 cubin");
  const auto ks = kernels_of(cubin);
  EXPECT_EQ(ks, kernels_of(ptx));
  EXPECT_EQ(globals_of(cubin), globals_of(ptx));

  // And the values themselves (cuFuncGetParamInfo's, ptxas for sm_90), so
  // that a bug shared by both paths cannot pass.
  EXPECT_EQ(ks.size(), 19u);
  EXPECT_EQ(kernel(ks, "_Z3addPfPKfi"), (kernel_shape{{{0, 8}, {8, 8}, {16, 4}}, 20}));
  EXPECT_EQ(kernel(ks, "_Z5mixedc3S24s1Vdh"),
            (kernel_shape{{{0, 1}, {8, 24}, {32, 2}, {48, 16}, {64, 8}, {72, 1}}, 73}));
  EXPECT_EQ(kernel(ks, "_Z4widec3A32"), (kernel_shape{{{0, 1}, {16, 32}}, 48}));
  EXPECT_EQ(kernel(ks, "_Z3oddc4Odd3c4Odd5s"),
            (kernel_shape{{{0, 1}, {1, 3}, {4, 1}, {8, 8}, {16, 2}}, 18}));
  EXPECT_EQ(kernel(ks, "_Z12empty_struct5Emptyi"), (kernel_shape{{{0, 1}, {4, 4}}, 8}));
  EXPECT_EQ(kernel(ks, "_Z5big4k4BlobILi4096EEi"), (kernel_shape{{{0, 4096}, {4096, 4}}, 4100}));
  EXPECT_EQ(kernel(ks, "_Z6big16k4BlobILi16384EEc"),
            (kernel_shape{{{0, 16384}, {16384, 1}}, 16385}));
  EXPECT_EQ(kernel(ks, "_Z6big30kc4BlobILi30000EEi"),
            (kernel_shape{{{0, 1}, {1, 30000}, {30004, 4}}, 30008}));
  EXPECT_EQ(kernel(ks, "none"), (kernel_shape{{}, 0}));
  EXPECT_EQ(kernel(ks, "_Z4tmplIdLi3EEvT_4BlobIXT0_EE"), (kernel_shape{{{0, 8}, {8, 3}}, 11}));
  EXPECT_EQ(kernel(ks, "_Z15internal_kernelic"), (kernel_shape{{{0, 4}, {4, 1}}, 5}));
  const kernel_shape& forty = kernel(ks, "_Z5fortyiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiiii");
  ASSERT_EQ(forty.params.size(), 40u);
  EXPECT_EQ(forty.params[39], (std::pair<uint32_t, uint32_t>{156, 4}));
  EXPECT_EQ(ks.count("_Z6helperi"), 0u) << "a device function is no kernel";
  const auto gs = globals_of(cubin);
  EXPECT_EQ(gs.at("counter"), (std::pair<uint64_t, bool>{4, false}));
  EXPECT_EQ(gs.at("table"), (std::pair<uint64_t, bool>{400, false}));
  EXPECT_EQ(gs.at("coeffs"), (std::pair<uint64_t, bool>{64, true}));
  EXPECT_EQ(gs.at("initialised"), (std::pair<uint64_t, bool>{16, false}));
  EXPECT_EQ(gs.at("constant_init"), (std::pair<uint64_t, bool>{12, true}));
  EXPECT_EQ(gs.at("managed_value"), (std::pair<uint64_t, bool>{4, false}));
  EXPECT_EQ(gs.at("pairs"), (std::pair<uint64_t, bool>{112, false}));
}

TEST(CubinReal, Lz4CompressedCubinOnly) {
  const bytes image = sample("samples_sm90_lz4.fatbin");
  expect_cubins_only(image, {90}, kLz4Flag);
  const module_info plain = parse_ok(sample("samples_sm90.fatbin"));
  const module_info lz4 = parse_ok(image);
  EXPECT_EQ(kernels_of(lz4), kernels_of(plain));
  EXPECT_EQ(globals_of(lz4), globals_of(plain));
  EXPECT_FALSE(lz4.kernels.empty());
}

// nvcc 13's default: zstd. What NVIDIA's CUDA 13 libraries and PyTorch's wheels ship.
TEST(CubinReal, ZstdCompressedCubinReadsAsThePlainOne) {
  const bytes image = sample("samples_sm90_zstd.fatbin");
  expect_cubins_only(image, {90}, kZstdFlag);
  const module_info zstd = parse_ok(image);
  const module_info plain = parse_ok(sample("samples_sm90.fatbin"));
  EXPECT_EQ(kernels_of(zstd), kernels_of(plain));
  EXPECT_EQ(globals_of(zstd), globals_of(plain));
  // One byte of the frame changed: refused with the entry named, never misread.
  bytes bad = image;
  bad[bad.size() / 2] ^= 0x5a;
  const std::string why = fatbin_error(bad);
  EXPECT_FALSE(why.empty());
}

TEST(CubinReal, RelocatableCubinReadsAsItsPtx) {
  // -rdc=true: device functions are global symbols, variables of type 13.
  const bytes image = sample("samples_rdc.fatbin");
  expect_cubins_only(image, {90}, 0);
  const module_info cubin = parse_ok(image);
  const module_info ptx = parse_ok(sample("samples_rdc_ptx.fatbin"));
  EXPECT_EQ(kernels_of(cubin), kernels_of(ptx));
  EXPECT_EQ(globals_of(cubin), globals_of(ptx));
  EXPECT_EQ(cubin.kernels.size(), 19u);
  EXPECT_EQ(kernels_of(cubin).count("_Z6helperi"), 0u);
}

TEST(CubinReal, BareCubinReadsAsTheFatbin) {
  const bytes cubin = sample("samples_sm90.cubin");
  module_info m;
  std::string why;
  ASSERT_TRUE(parse_cubin(cubin.data(), cubin.size(), &m, &why)) << why;
  const module_info from_fatbin = parse_ok(sample("samples_sm90.fatbin"));
  EXPECT_EQ(kernels_of(m), kernels_of(from_fatbin));
  EXPECT_EQ(globals_of(m), globals_of(from_fatbin));
}

// --- which cubin -------------------------------------------------------------------------

TEST(CubinChoice, Sm90AmongSeveralArchs) {
  const bytes image = sample("samples_multi.fatbin");
  expect_cubins_only(image, {75, 90, 120}, 0);
  // `wide` tells the archs apart: ptxas aligns the address of the
  // __align__(32) parameter in the constant bank, and the bank starts at
  // 0x210 on sm_90 but at 0x160 on sm_75 and 0x380 on sm_120.
  const module_info m = parse_ok(image);
  EXPECT_EQ(m.source, "sm_90 cubin");
  const auto ks = kernels_of(m);
  EXPECT_EQ(kernel(ks, "_Z4widec3A32"), (kernel_shape{{{0, 1}, {16, 32}}, 48}));
  EXPECT_EQ(ks, kernels_of(parse_ok(sample("samples_sm90.fatbin"))));
}

TEST(CubinChoice, WithoutSm90TheClosestArchBelowIt) {
  const bytes image = sample("samples_no90.fatbin");
  expect_cubins_only(image, {75, 120}, 0);
  const module_info m = parse_ok(image);
  EXPECT_EQ(m.source, "sm_75 cubin");
  const auto ks = kernels_of(m);
  EXPECT_EQ(kernel(ks, "_Z4widec3A32"), (kernel_shape{{{0, 1}, {32, 32}}, 64}));
  // Parameters aligned to 16 bytes or less sit where they do on sm_90.
  auto sm90 = kernels_of(parse_ok(sample("samples_sm90.fatbin")));
  EXPECT_EQ(kernel(ks, "_Z5mixedc3S24s1Vdh"), kernel(sm90, "_Z5mixedc3S24s1Vdh"));
  EXPECT_EQ(kernel(ks, "_Z6big30kc4BlobILi30000EEi"), kernel(sm90, "_Z6big30kc4BlobILi30000EEi"));
  EXPECT_EQ(ks.size(), sm90.size());
  EXPECT_EQ(globals_of(m), globals_of(parse_ok(sample("samples_sm90.fatbin"))));
}

// --- malformed cubins ----------------------------------------------------------------------

// The sections of a well-formed cubin, read here with fixed ELF64 offsets,
// to know where to corrupt it.
struct raw_section {
  size_t header_at = 0;
  std::string name;
  uint32_t type = 0;
  uint64_t offset = 0;
  uint64_t size = 0;
};

std::vector<raw_section> sections_of(const bytes& f) {
  const uint64_t shoff = get<uint64_t>(f, 40);
  const uint16_t count = get<uint16_t>(f, 60);
  const uint16_t names = get<uint16_t>(f, 62);
  const uint64_t names_at = get<uint64_t>(f, shoff + names * 64u + 24);
  std::vector<raw_section> out;
  for (uint16_t i = 0; i < count; ++i) {
    raw_section s;
    s.header_at = shoff + i * 64u;
    s.name = reinterpret_cast<const char*>(f.data() + names_at + get<uint32_t>(f, s.header_at));
    s.type = get<uint32_t>(f, s.header_at + 4);
    s.offset = get<uint64_t>(f, s.header_at + 24);
    s.size = get<uint64_t>(f, s.header_at + 32);
    out.push_back(s);
  }
  return out;
}

const raw_section& section_named(const std::vector<raw_section>& ss, const std::string& name) {
  for (const raw_section& s : ss) {
    if (s.name == name) return s;
  }
  ADD_FAILURE() << "no section " << name;
  static const raw_section none;
  return none;
}

// Byte offset of symbol `name` in the symbol table.
size_t symbol_at(const bytes& f, const std::string& name) {
  const auto ss = sections_of(f);
  const raw_section& symtab = section_named(ss, ".symtab");
  const raw_section& strtab = section_named(ss, ".strtab");
  for (uint64_t at = symtab.offset; at + 24 <= symtab.offset + symtab.size; at += 24) {
    const char* n = reinterpret_cast<const char*>(f.data() + strtab.offset + get<uint32_t>(f, at));
    if (name == n) return static_cast<size_t>(at);
  }
  ADD_FAILURE() << "no symbol " << name;
  return 0;
}

// Byte offset of the first record with `attr` in section `s`.
size_t record_at(const bytes& f, const raw_section& s, uint8_t attr) {
  for (uint64_t pos = s.offset; pos + 4 <= s.offset + s.size;) {
    if (f[pos + 1] == attr) return static_cast<size_t>(pos);
    pos += 4 + (f[pos] == 4 ? get<uint16_t>(f, pos + 2) : 0);
  }
  ADD_FAILURE() << "no record " << int{attr} << " in " << s.name;
  return 0;
}

const std::string kMixedInfo = ".nv.info._Z5mixedc3S24s1Vdh";

TEST(CubinHostile, EveryTruncationIsRefused) {
  const bytes cubin = sample("samples_sm90.cubin");
  for (size_t n = 0; n < cubin.size(); ++n) {
    module_info m;
    std::string why;
    EXPECT_FALSE(parse_cubin(cubin.data(), n, &m, &why)) << "prefix of " << n << " bytes";
    EXPECT_FALSE(why.empty());
  }
}

TEST(CubinHostile, HeadersOutsideTheFile) {
  const bytes good = sample("samples_sm90.cubin");
  const auto ss = sections_of(good);
  const raw_section& symtab = section_named(ss, ".symtab");
  bytes b = good;
  put<uint64_t>(&b, symtab.header_at + 24, good.size());  // symbol table past the end
  EXPECT_NE(cubin_error(b).find("past the end"), std::string::npos) << cubin_error(b);
  b = good;
  put<uint64_t>(&b, symtab.header_at + 32, ~uint64_t{0} - 8);  // a size that wraps
  EXPECT_NE(cubin_error(b).find("past the end"), std::string::npos) << cubin_error(b);
  b = good;
  put<uint64_t>(&b, 40, ~uint64_t{0} - 63);  // section headers at the top of the address space
  EXPECT_NE(cubin_error(b).find("section headers"), std::string::npos) << cubin_error(b);
  b = good;
  put<uint16_t>(&b, 60, 0xfeff);  // more section headers than the file holds
  EXPECT_NE(cubin_error(b).find("claims 65279 section headers"), std::string::npos)
      << cubin_error(b);
  b = good;
  put<uint16_t>(&b, 62, 0xfeff);  // name table index out of range
  EXPECT_NE(cubin_error(b).find("name table"), std::string::npos) << cubin_error(b);
  b = good;
  put<uint16_t>(&b, 56, 0x7fff);  // program headers past the end
  EXPECT_NE(cubin_error(b).find("program headers"), std::string::npos) << cubin_error(b);
  b = good;
  put<uint16_t>(&b, 18, 62);  // x86-64
  EXPECT_NE(cubin_error(b).find("machine 62"), std::string::npos) << cubin_error(b);
  b = good;
  b[4] = 1;  // 32-bit
  EXPECT_NE(cubin_error(b).find("64-bit"), std::string::npos) << cubin_error(b);
  b = good;
  b[1] = 'X';
  EXPECT_NE(cubin_error(b).find("magic"), std::string::npos) << cubin_error(b);
}

TEST(CubinHostile, BadSymbols) {
  const bytes good = sample("samples_sm90.cubin");
  const auto ss = sections_of(good);
  const raw_section& symtab = section_named(ss, ".symtab");
  bytes b = good;
  put<uint64_t>(&b, symtab.header_at + 32, symtab.size - 1);  // not whole symbols
  EXPECT_NE(cubin_error(b).find("malformed symbol table"), std::string::npos) << cubin_error(b);
  const size_t add = symbol_at(good, "_Z3addPfPKfi");
  b = good;
  put<uint32_t>(&b, add, 0x7fffffff);  // name outside the string table
  EXPECT_NE(cubin_error(b).find("name lies outside"), std::string::npos) << cubin_error(b);
  b = good;
  put<uint16_t>(&b, add + 6, static_cast<uint16_t>(ss.size()));  // section index past the last
  EXPECT_NE(cubin_error(b).find("in section"), std::string::npos) << cubin_error(b);
  b = good;
  put<uint16_t>(&b, add + 6, 0xffff);  // extended index without its table
  EXPECT_NE(cubin_error(b).find("SHT_SYMTAB_SHNDX"), std::string::npos) << cubin_error(b);
  const size_t table = symbol_at(good, "table");
  b = good;
  put<uint64_t>(&b, table + 16, uint64_t{1} << 40);  // larger than its section
  EXPECT_NE(cubin_error(b).find("outside its section .nv.global"), std::string::npos)
      << cubin_error(b);
  b = good;
  put<uint64_t>(&b, table + 8, ~uint64_t{0});  // value + size wraps
  EXPECT_NE(cubin_error(b).find("outside its section"), std::string::npos) << cubin_error(b);
}

TEST(CubinHostile, BadKernelInfo) {
  const bytes good = sample("samples_sm90.cubin");
  const auto ss = sections_of(good);
  const raw_section& info = section_named(ss, kMixedInfo);
  ASSERT_GT(info.size, 0u);
  // A record whose length runs past the section.
  bytes b = good;
  const size_t first = static_cast<size_t>(info.offset);
  ASSERT_EQ(b[first], 4);
  put<uint16_t>(&b, first + 2, static_cast<uint16_t>(info.size));
  EXPECT_NE(cubin_error(b).find("running past"), std::string::npos) << cubin_error(b);
  EXPECT_NE(cubin_error(b).find(kMixedInfo), std::string::npos) << cubin_error(b);
  // The section ending inside a record.
  b = good;
  put<uint64_t>(&b, section_named(ss, kMixedInfo).header_at + 32, info.size - 6);
  EXPECT_NE(cubin_error(b).find("partial record"), std::string::npos) << cubin_error(b);
  // A format no compiler writes.
  b = good;
  b[first] = 9;
  EXPECT_NE(cubin_error(b).find("unknown format 9"), std::string::npos) << cubin_error(b);
  // A parameter record of the wrong length.
  const size_t param = record_at(good, info, 0x17);
  b = good;
  put<uint16_t>(&b, param + 2, 8);
  EXPECT_NE(cubin_error(b).find("8-byte parameter record"), std::string::npos) << cubin_error(b);
  // Two parameters with one ordinal.
  b = good;
  put<uint16_t>(&b, param + 8, static_cast<uint16_t>(get<uint16_t>(good, param + 8) - 1));
  EXPECT_NE(cubin_error(b).find("missing or repeated"), std::string::npos) << cubin_error(b);
  // Parameters overlapping.
  b = good;
  put<uint16_t>(&b, param + 10, 0);  // the last parameter moved to offset 0
  EXPECT_NE(cubin_error(b).find("not after the previous one"), std::string::npos)
      << cubin_error(b);
  // A parameter past the 32764-byte limit (the first record is the last parameter).
  b = good;
  put<uint16_t>(&b, param + 10, 0xfff0);
  EXPECT_NE(cubin_error(b).find("within 32764 bytes"), std::string::npos) << cubin_error(b);
  // A block size that disagrees with the parameters.
  const size_t block = record_at(good, info, 0x19);
  b = good;
  put<uint16_t>(&b, block + 2, 72);
  EXPECT_NE(cubin_error(b).find("parameter block of 72 bytes"), std::string::npos)
      << cubin_error(b);
  // A kernel without its .nv.info section (renamed away).
  b = good;
  const raw_section& names = section_named(ss, ".shstrtab");
  const uint32_t name_at = get<uint32_t>(good, section_named(ss, kMixedInfo).header_at);
  b[names.offset + name_at + 1] = 'X';  // ".Xv.info._Z5mixed..."
  EXPECT_NE(cubin_error(b).find("no .nv.info._Z5mixedc3S24s1Vdh section"), std::string::npos)
      << cubin_error(b);
}

TEST(CubinHostile, CorruptedHeadersTablesAndInfoNeverCrash) {
  // Every byte of the ELF header, the section headers, the symbol and string
  // tables and the .nv.info sections set to 0, 0xff and bit-flipped: the
  // reader may accept or refuse, but must stay inside the buffer (run under
  // ASan to see it). Code and constant banks are never read.
  const bytes good = sample("samples_sm90.cubin");
  std::vector<std::pair<size_t, size_t>> ranges = {{0, 64}};
  const auto ss = sections_of(good);
  ranges.emplace_back(static_cast<size_t>(get<uint64_t>(good, 40)), ss.size() * 64);
  for (const raw_section& s : ss) {
    if (s.type == 2 || s.type == 3 || s.name.rfind(".nv.info", 0) == 0) {
      ranges.emplace_back(static_cast<size_t>(s.offset), static_cast<size_t>(s.size));
    }
  }
  size_t refused = 0, tried = 0;
  for (const auto& [from, len] : ranges) {
    for (size_t i = from; i < from + len && i < good.size(); ++i) {
      for (const int mode : {0, 1, 2}) {
        bytes b = good;
        b[i] = mode == 0 ? 0 : mode == 1 ? 0xff : static_cast<uint8_t>(b[i] ^ 0x10);
        module_info m;
        std::string why;
        ++tried;
        if (!parse_cubin(b.data(), b.size(), &m, &why)) {
          ++refused;
          EXPECT_FALSE(why.empty());
        }
      }
    }
  }
  EXPECT_GT(refused, 0u);
  EXPECT_GT(tried, 10000u);
}

// --- .nv.info records, hand-made -----------------------------------------------------

bytes record(uint8_t format, uint8_t attr, std::vector<uint8_t> value = {}) {
  bytes r = {format, attr};
  if (format == 4) {
    r.push_back(static_cast<uint8_t>(value.size()));
    r.push_back(static_cast<uint8_t>(value.size() >> 8));
  }
  r.insert(r.end(), value.begin(), value.end());
  return r;
}

bytes param_record(uint8_t attr, uint16_t ordinal, uint16_t offset, uint32_t size) {
  bytes v(12, 0);
  std::memcpy(v.data() + 4, &ordinal, 2);
  std::memcpy(v.data() + 6, &offset, 2);
  const uint32_t word = attr == 0x17 ? size << 18 | 0x1f000 : size;
  std::memcpy(v.data() + 8, &word, 4);
  return record(4, attr, v);
}

bytes concat(std::initializer_list<bytes> parts) {
  bytes out;
  for (const bytes& p : parts) out.insert(out.end(), p.begin(), p.end());
  return out;
}

TEST(CubinNvInfo, RecordsOfEveryFormatAndBothParameterForms) {
  // Value-less, byte and half-word records in between, parameters out of
  // order and in both forms, as ptxas mixes them.
  const bytes section = concat({record(4, 0x37, {0x82, 0, 0, 0}), param_record(0x17, 2, 16, 4),
                                record(1, 0x3e, {0, 0}), param_record(0x45, 1, 8, 8),
                                record(2, 0x4c, {1, 0}), param_record(0x17, 0, 0, 1),
                                record(3, 0x19, {20, 0}), record(3, 0x1b, {0xff, 0})});
  kernel_info k;
  std::string why;
  ASSERT_TRUE(read_kernel_params(section.data(), section.size(), &k, &why)) << why;
  ASSERT_EQ(k.params.size(), 3u);
  EXPECT_EQ(k.params[0].offset, 0u);
  EXPECT_EQ(k.params[0].size, 1u);
  EXPECT_EQ(k.params[1].offset, 8u);
  EXPECT_EQ(k.params[1].size, 8u);
  EXPECT_EQ(k.params[2].offset, 16u);
  EXPECT_EQ(k.params[2].size, 4u);
  EXPECT_EQ(k.param_bytes, 20u);

  kernel_info none;
  ASSERT_TRUE(read_kernel_params(nullptr, 0, &none, &why)) << why;
  EXPECT_TRUE(none.params.empty());
  EXPECT_EQ(none.param_bytes, 0u);
}

TEST(CubinNvInfo, MalformedRecordsAreRefused) {
  const auto refused = [](const bytes& section, const std::string& expect) {
    kernel_info k;
    std::string why;
    EXPECT_FALSE(read_kernel_params(section.data(), section.size(), &k, &why)) << expect;
    EXPECT_NE(why.find(expect), std::string::npos) << why;
  };
  refused({4, 0x17, 12, 0, 0, 0}, "running past");
  refused({3, 0x19, 0}, "partial record");
  refused({0, 0x19, 0, 0}, "unknown format 0");
  refused(record(4, 0x17, bytes(16, 0)), "16-byte parameter record");
  refused(record(4, 0x19, {8, 0, 0, 0}), "block size record of format 4");
  refused(param_record(0x17, 1, 0, 4), "parameter 1 where parameter 0");
  refused(concat({param_record(0x17, 0, 0, 4), param_record(0x17, 0, 4, 4)}),
          "parameter 0 where parameter 1");
  refused(param_record(0x45, 0, 0, 0), "(+0)");
  refused(param_record(0x45, 0, 0, 32765), "within 32764 bytes");
  refused(param_record(0x45, 0, 32760, 8), "within 32764 bytes");
  refused(concat({param_record(0x17, 0, 0, 4), record(3, 0x19, {8, 0})}),
          "parameter block of 8 bytes");
}

}  // namespace
}  // namespace vgpu::fatbin
