// A bounds-checked view of a little-endian ELF64 file: its section headers,
// section names and symbol table. Enough of the ELF format (the System V gABI)
// to read a CUDA cubin; nothing is relocated or loaded. The bytes come from a
// guest, so open() checks every header, offset and size once, and the
// accessors then only hand out ranges inside the file.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace vgpu::fatbin::elf {

inline constexpr uint16_t kMachineCuda = 190;  // EM_CUDA
inline constexpr uint32_t kSectionNobits = 8;  // SHT_NOBITS: no bytes in the file
inline constexpr uint8_t kSymbolObject = 1;    // STT_OBJECT
inline constexpr uint8_t kSymbolFunc = 2;      // STT_FUNC

struct section {
  std::string_view name;
  uint32_t type = 0;
  uint64_t offset = 0;
  uint64_t size = 0;
  uint32_t link = 0;
  uint32_t info = 0;
};

struct symbol {
  std::string_view name;
  uint8_t type = 0;   // low nibble of st_info
  uint8_t bind = 0;   // high nibble of st_info
  uint8_t other = 0;  // st_other
  uint32_t section = 0;  // index into sections(); 0 when undefined or absolute
  uint64_t value = 0;
  uint64_t size = 0;
};

class file {
 public:
  // False and a reason when `data` is not a well-formed ELF64 little-endian
  // file for EM_CUDA. `data` must outlive this object.
  bool open(const uint8_t* data, size_t size, std::string* why);

  const std::vector<section>& sections() const { return sections_; }
  // The bytes of a section that has them (not SHT_NOBITS); open() checked
  // that they lie inside the file.
  const uint8_t* bytes(const section& s) const { return data_ + s.offset; }
  // The symbols of the (single) SHT_SYMTAB section; none without one.
  const std::vector<symbol>& symbols() const { return symbols_; }

 private:
  bool read_sections(uint64_t shoff, uint64_t count, uint64_t names, std::string* why);
  bool read_symbols(std::string* why);
  // A NUL-terminated string at `at` inside string table section `table`.
  bool string_at(uint32_t table, uint64_t at, std::string_view* out) const;

  const uint8_t* data_ = nullptr;
  size_t size_ = 0;
  std::vector<section> sections_;
  std::vector<symbol> symbols_;
};

}  // namespace vgpu::fatbin::elf
