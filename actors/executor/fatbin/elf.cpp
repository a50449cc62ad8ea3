#include "actors/executor/fatbin/elf.h"

#include <cstring>

namespace vgpu::fatbin::elf {

namespace {

// Sizes and constants of the ELF64 format (gABI).
constexpr size_t kHeaderBytes = 64;
constexpr size_t kSectionHeaderBytes = 64;
constexpr size_t kSymbolBytes = 24;
constexpr uint8_t kClass64 = 2;
constexpr uint8_t kLittleEndian = 1;
constexpr uint32_t kSectionSymtab = 2;
constexpr uint32_t kSectionStrtab = 3;
constexpr uint32_t kSectionSymtabShndx = 18;
constexpr uint16_t kIndexLoReserve = 0xff00;  // SHN_LORESERVE: ABS, COMMON, ...
constexpr uint16_t kIndexExtended = 0xffff;   // SHN_XINDEX: the real index is elsewhere

// Host and cubin are both little-endian; memcpy because guest bytes carry
// no alignment promise.
template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

// [offset, offset + size) inside a file of `file_size` bytes, without overflow.
bool inside(uint64_t offset, uint64_t size, uint64_t file_size) {
  return offset <= file_size && size <= file_size - offset;
}

}  // namespace

bool file::open(const uint8_t* data, size_t size, std::string* why) {
  data_ = data;
  size_ = size;
  sections_.clear();
  symbols_.clear();
  if (data == nullptr || size < kHeaderBytes) {
    *why = "is " + std::to_string(size) + " bytes, shorter than an ELF header";
    return false;
  }
  if (std::memcmp(data, "\x7f" "ELF", 4) != 0) {
    *why = "does not start with the ELF magic";
    return false;
  }
  if (data[4] != kClass64 || data[5] != kLittleEndian) {
    *why = "is not a 64-bit little-endian ELF file";
    return false;
  }
  const uint16_t machine = load<uint16_t>(data + 18);
  if (machine != kMachineCuda) {
    *why = "is an ELF file for machine " + std::to_string(machine) + ", not CUDA (" +
           std::to_string(kMachineCuda) + ")";
    return false;
  }
  // Program headers are not read, but a file cut short inside them is
  // still a cut file.
  const uint64_t phoff = load<uint64_t>(data + 32);
  const uint16_t phentsize = load<uint16_t>(data + 54);
  const uint16_t phnum = load<uint16_t>(data + 56);
  if (phnum != 0 && (phoff == 0 || !inside(phoff, uint64_t{phentsize} * phnum, size))) {
    *why = "has its " + std::to_string(phnum) + " program headers outside the file";
    return false;
  }
  const uint64_t shoff = load<uint64_t>(data + 40);
  const uint16_t shentsize = load<uint16_t>(data + 58);
  uint64_t count = load<uint16_t>(data + 60);
  uint64_t names = load<uint16_t>(data + 62);
  if (shoff == 0) {
    *why = "has no section headers";
    return false;
  }
  if (shentsize != kSectionHeaderBytes || !inside(shoff, kSectionHeaderBytes, size)) {
    *why = "has its section headers (at " + std::to_string(shoff) + ", " +
           std::to_string(shentsize) + " bytes each) outside the file or of a foreign size";
    return false;
  }
  // More than 0xff00 sections: the count and the name table's index move
  // into section header 0 (gABI "extended section numbering").
  const uint8_t* first = data + shoff;
  if (count == 0) count = load<uint64_t>(first + 32);
  if (names == kIndexExtended) names = load<uint32_t>(first + 40);
  return read_sections(shoff, count, names, why) && read_symbols(why);
}

bool file::read_sections(uint64_t shoff, uint64_t count, uint64_t names, std::string* why) {
  if (count == 0 || count > (size_ - shoff) / kSectionHeaderBytes) {
    *why = "claims " + std::to_string(count) + " section headers at offset " +
           std::to_string(shoff) + "; the file has room for " +
           std::to_string((size_ - shoff) / kSectionHeaderBytes);
    return false;
  }
  std::vector<uint32_t> name_at(static_cast<size_t>(count));
  sections_.resize(static_cast<size_t>(count));
  for (size_t i = 0; i < sections_.size(); ++i) {
    const uint8_t* h = data_ + shoff + i * kSectionHeaderBytes;
    section& s = sections_[i];
    name_at[i] = load<uint32_t>(h);
    s.type = load<uint32_t>(h + 4);
    s.offset = load<uint64_t>(h + 24);
    s.size = load<uint64_t>(h + 32);
    s.link = load<uint32_t>(h + 40);
    s.info = load<uint32_t>(h + 44);
    if (s.type != kSectionNobits && !inside(s.offset, s.size, size_)) {
      *why = "has section " + std::to_string(i) + " at offset " + std::to_string(s.offset) +
             " (+" + std::to_string(s.size) + ") past the end of its " + std::to_string(size_) +
             " bytes";
      return false;
    }
  }
  if (names == 0 || names >= count || sections_[names].type != kSectionStrtab) {
    *why = "has no valid section name table (index " + std::to_string(names) + ")";
    return false;
  }
  for (size_t i = 0; i < sections_.size(); ++i) {
    if (!string_at(static_cast<uint32_t>(names), name_at[i], &sections_[i].name)) {
      *why = "has section " + std::to_string(i) + " whose name lies outside the name table";
      return false;
    }
  }
  return true;
}

bool file::read_symbols(std::string* why) {
  uint32_t table = 0;
  for (size_t i = 0; i < sections_.size(); ++i) {
    if (sections_[i].type != kSectionSymtab) continue;
    if (table != 0) {
      *why = "has more than one symbol table";
      return false;
    }
    table = static_cast<uint32_t>(i);
  }
  if (table == 0) return true;  // no symbols: nothing to describe
  const section& st = sections_[table];
  if (st.size % kSymbolBytes != 0 || st.link == 0 || st.link >= sections_.size() ||
      sections_[st.link].type != kSectionStrtab) {
    *why = "has a malformed symbol table (" + std::to_string(st.size) + " bytes, strings in section " +
           std::to_string(st.link) + ")";
    return false;
  }
  const uint64_t n = st.size / kSymbolBytes;
  // Section indices that do not fit in 16 bits (SHN_XINDEX) live in a
  // parallel table of u32s linked to this one.
  const uint8_t* extended = nullptr;
  for (const section& s : sections_) {
    if (s.type == kSectionSymtabShndx && s.link == table && s.size / 4 >= n) extended = bytes(s);
  }
  symbols_.resize(static_cast<size_t>(n));
  for (size_t i = 0; i < symbols_.size(); ++i) {
    const uint8_t* e = bytes(st) + i * kSymbolBytes;
    symbol& y = symbols_[i];
    const uint8_t info = e[4];
    y.type = info & 0xf;
    y.bind = info >> 4;
    y.other = e[5];
    const uint16_t shndx = load<uint16_t>(e + 6);
    y.value = load<uint64_t>(e + 8);
    y.size = load<uint64_t>(e + 16);
    if (shndx == kIndexExtended) {
      if (extended == nullptr) {
        *why = "has symbol " + std::to_string(i) + " with an extended section index and no "
               "SHT_SYMTAB_SHNDX table for it";
        return false;
      }
      y.section = load<uint32_t>(extended + 4 * i);
    } else {
      // Absolute and common symbols belong to no section of the file.
      y.section = shndx >= kIndexLoReserve ? 0 : shndx;
    }
    if (y.section >= sections_.size()) {
      *why = "has symbol " + std::to_string(i) + " in section " + std::to_string(y.section) +
             " of " + std::to_string(sections_.size());
      return false;
    }
    if (!string_at(st.link, load<uint32_t>(e), &y.name)) {
      *why = "has symbol " + std::to_string(i) + " whose name lies outside its string table";
      return false;
    }
  }
  return true;
}

bool file::string_at(uint32_t table, uint64_t at, std::string_view* out) const {
  const section& s = sections_[table];
  if (at >= s.size) return false;
  const char* start = reinterpret_cast<const char*>(bytes(s)) + at;
  const size_t room = static_cast<size_t>(s.size - at);
  const void* nul = std::memchr(start, 0, room);
  if (nul == nullptr) return false;
  *out = std::string_view(start, static_cast<size_t>(static_cast<const char*>(nul) - start));
  return true;
}

}  // namespace vgpu::fatbin::elf
