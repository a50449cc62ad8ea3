// Fatbins arrive in data-area chunks (vgpuModuleLoad); both executors collect
// them by the same rules: the first chunk starts at offset 0, each next one
// where the last ended, the total never changes and stays under 1 GiB, and
// memory grows with what arrives, never reserved from the guest's total alone.
// A broken upload is dropped and starts over from offset 0.
#pragma once

#include <cstdint>
#include <new>
#include <unordered_map>
#include <vector>

#include "actors/executor/call_context.h"

namespace vgpu::host {

class module_uploads {
 public:
  static constexpr uint64_t kMaxModuleBytes = 1ull << 30;

  enum class result { more, complete, refused, no_memory };

  // Adds one chunk. On `complete`, *image holds the whole fatbin and the upload
  // is forgotten; on `refused`, *why says which rule the chunk broke.
  result add(uint64_t module, uint64_t offset, uint64_t total, const_bytes chunk, std::vector<uint8_t>* image,
             const char** why) {
    const auto refuse = [&](const char* reason) {
      uploads_.erase(module);
      *why = reason;
      return result::refused;
    };
    if (total == 0 || total > kMaxModuleBytes) return refuse("bad total size");
    auto it = uploads_.find(module);
    const uint64_t received = it == uploads_.end() ? 0 : it->second.bytes.size();
    if (offset != received) return refuse(offset == 0 ? "an upload of this module is under way" : "not the next chunk");
    if (it != uploads_.end() && it->second.total != total) return refuse("the total changed");
    if (chunk.size > total - offset) return refuse("past the total");
    try {
      if (it == uploads_.end()) it = uploads_.emplace(module, upload{total, {}}).first;
      it->second.bytes.insert(it->second.bytes.end(), chunk.data, chunk.data + chunk.size);
    } catch (const std::bad_alloc&) {
      uploads_.erase(module);
      return result::no_memory;
    }
    if (it->second.bytes.size() < total) return result::more;
    *image = std::move(it->second.bytes);
    uploads_.erase(it);
    return result::complete;
  }

  // The guest abandoned an upload (unloaded a module it never finished).
  bool drop(uint64_t module) { return uploads_.erase(module) == 1; }
  void clear() { uploads_.clear(); }

 private:
  struct upload {
    uint64_t total;
    std::vector<uint8_t> bytes;
  };
  std::unordered_map<uint64_t, upload> uploads_;  // by the guest's module id
};

}  // namespace vgpu::host
