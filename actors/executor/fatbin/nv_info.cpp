#include "actors/executor/fatbin/nv_info.h"

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

namespace vgpu::fatbin {

namespace {

constexpr uint8_t kFormatNone = 1;
constexpr uint8_t kFormatByte = 2;
constexpr uint8_t kFormatHalf = 3;
constexpr uint8_t kFormatSized = 4;
constexpr uint8_t kAttrParam = 0x17;
constexpr uint8_t kAttrParamLong = 0x45;
constexpr uint8_t kAttrParamBlockSize = 0x19;
constexpr size_t kParamRecordBytes = 12;
constexpr unsigned kParamSizeShift = 18;  // in 0x17's flags word

template <typename T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof v);
  return v;
}

struct param_record {
  uint32_t ordinal = 0;
  uint32_t offset = 0;
  uint32_t size = 0;
};

std::string at(size_t pos) { return " at offset " + std::to_string(pos); }

// Orders the records by ordinal and checks they describe one layout.
bool build_layout(std::vector<param_record> recs, bool block_size_given, uint32_t block_size,
                  kernel_info* k, std::string* why) {
  std::sort(recs.begin(), recs.end(),
            [](const param_record& a, const param_record& b) { return a.ordinal < b.ordinal; });
  uint64_t end = 0;
  for (size_t i = 0; i < recs.size(); ++i) {
    const param_record& r = recs[i];
    if (r.ordinal != i) {
      *why = "describes parameter " + std::to_string(r.ordinal) + " where parameter " +
             std::to_string(i) + " was due (missing or repeated)";
      return false;
    }
    if (r.size == 0 || r.offset < end || uint64_t{r.offset} + r.size > kMaxParamBytes) {
      *why = "places parameter " + std::to_string(i) + " at offset " + std::to_string(r.offset) +
             " (+" + std::to_string(r.size) + "), not after the previous one (ending at " +
             std::to_string(end) + ") within " + std::to_string(kMaxParamBytes) + " bytes";
      return false;
    }
    end = uint64_t{r.offset} + r.size;
    k->params.push_back({r.offset, r.size});
  }
  // The block size is the end of the last parameter (what the guest's shim
  // computes from the layout); a cubin saying otherwise is not ptxas's.
  if (block_size_given && block_size != end) {
    *why = "gives a parameter block of " + std::to_string(block_size) +
           " bytes, but its parameters end at " + std::to_string(end);
    return false;
  }
  k->param_bytes = static_cast<uint32_t>(end);
  return true;
}

}  // namespace

bool read_kernel_params(const uint8_t* data, size_t size, kernel_info* k, std::string* why) {
  std::vector<param_record> recs;
  bool block_size_given = false;
  uint32_t block_size = 0;
  for (size_t pos = 0; pos < size;) {
    if (size - pos < 4) {
      *why = "ends in a partial record" + at(pos);
      return false;
    }
    const uint8_t format = data[pos];
    const uint8_t attr = data[pos + 1];
    if (format == kFormatNone || format == kFormatByte || format == kFormatHalf) {
      if (attr == kAttrParamBlockSize) {
        if (format != kFormatHalf) {
          *why = "has a parameter block size record of format " + std::to_string(format) + at(pos);
          return false;
        }
        block_size_given = true;
        block_size = load<uint16_t>(data + pos + 2);
      }
      pos += 4;
      continue;
    }
    if (format != kFormatSized) {
      *why = "has a record of unknown format " + std::to_string(format) + at(pos);
      return false;
    }
    const size_t len = load<uint16_t>(data + pos + 2);
    if (len > size - pos - 4) {
      *why = "has a " + std::to_string(len) + "-byte record" + at(pos) + " running past its " +
             std::to_string(size) + " bytes";
      return false;
    }
    const uint8_t* v = data + pos + 4;
    if (attr == kAttrParam || attr == kAttrParamLong) {
      if (len != kParamRecordBytes) {
        *why = "has a " + std::to_string(len) + "-byte parameter record" + at(pos) + " (12 expected)";
        return false;
      }
      param_record r;
      r.ordinal = load<uint16_t>(v + 4);
      r.offset = load<uint16_t>(v + 6);
      const uint32_t word = load<uint32_t>(v + 8);
      r.size = attr == kAttrParam ? word >> kParamSizeShift : word;
      recs.push_back(r);
    } else if (attr == kAttrParamBlockSize) {
      *why = "has a parameter block size record of format 4" + at(pos);
      return false;
    }
    pos += 4 + len;
  }
  return build_layout(std::move(recs), block_size_given, block_size, k, why);
}

}  // namespace vgpu::fatbin
