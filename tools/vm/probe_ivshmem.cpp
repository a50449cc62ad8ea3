// vgpu-ivshmem-probe: checks, inside a VM, that QEMU's ivshmem-doorbell device
// is usable from user space without a kernel driver (shared/notes/ivshmem.md).
//
// For every PCI device 1af4:1110 under /sys/bus/pci/devices it
//   - mmaps resource2 (the shared region) and prints its first 8 bytes (hex,
//     little-endian u64 and as text),
//   - writes a mark (default "GUESTOK1") at bytes 8..15 of the region,
//   - mmaps resource0 (registers), prints IVPosition (offset 8) and writes the
//     Doorbell register (offset 12) with (peer << 16) | vector.
// Built static, so it also runs outside the chroot of the test VM.
//
//   vgpu-ivshmem-probe [--expect-magic HEX] [--mark TEXT] [--peer N] [--vector N]
//                      [--no-doorbell] [--sysfs DIR]
// Exit status: 0 ok; 1 the magic differs from --expect-magic; 2 no device or an
// error (message on stderr).
#include <dirent.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace {

constexpr uint32_t kRegIVPosition = 0x08;
constexpr uint32_t kRegDoorbell = 0x0C;

struct Options {
  bool expect_magic = false;
  uint64_t magic = 0;
  std::string mark = "GUESTOK1";
  uint32_t peer = 0;
  uint32_t vector = 0;
  bool doorbell = true;
  std::string sysfs = "/sys/bus/pci/devices";
};

[[noreturn]] void usage(int status) {
  std::fprintf(status ? stderr : stdout,
               "usage: vgpu-ivshmem-probe [--expect-magic HEX] [--mark TEXT] [--peer N] "
               "[--vector N] [--no-doorbell] [--sysfs DIR]\n");
  std::exit(status);
}

std::string read_line(const std::string& path) {
  std::ifstream f(path);
  std::string s;
  std::getline(f, s);
  return s;
}

// Maps a sysfs resource file whole; nullptr (with a message) on failure.
void* map_resource(const std::string& path, size_t* size) {
  const int fd = open(path.c_str(), O_RDWR | O_SYNC | O_CLOEXEC);
  if (fd < 0) {
    std::fprintf(stderr, "probe: error: open %s: %s\n", path.c_str(), std::strerror(errno));
    return nullptr;
  }
  struct stat st {};
  if (fstat(fd, &st) != 0 || st.st_size <= 0) {
    std::fprintf(stderr, "probe: error: %s: cannot tell its size\n", path.c_str());
    close(fd);
    return nullptr;
  }
  *size = static_cast<size_t>(st.st_size);
  void* p = mmap(nullptr, *size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const int err = errno;
  close(fd);
  if (p == MAP_FAILED) {
    std::fprintf(stderr, "probe: error: mmap %s (%zu bytes): %s%s\n", path.c_str(), *size,
                 std::strerror(err),
                 err == EPERM ? " (kernel lockdown? see shared/notes/ivshmem.md)" : "");
    return nullptr;
  }
  return p;
}

// 0 ok, 1 magic mismatch, 2 error.
int probe(const std::string& dir, const std::string& bdf, const Options& o) {
  std::printf("probe: device %s (1af4:1110, revision %s)\n", bdf.c_str(),
              read_line(dir + "/revision").c_str());

  size_t region_size = 0;
  auto* region = static_cast<volatile uint8_t*>(map_resource(dir + "/resource2", &region_size));
  if (!region) return 2;
  std::printf("probe: resource2 mapped: %zu bytes (%zu MiB)\n", region_size, region_size >> 20);

  uint8_t first[8];
  for (int i = 0; i < 8; ++i) first[i] = region[i];
  uint64_t magic = 0;
  for (int i = 7; i >= 0; --i) magic = (magic << 8) | first[i];
  std::string text;
  for (uint8_t c : first) text += (c >= 0x20 && c < 0x7f) ? static_cast<char>(c) : '.';
  std::printf("probe: first 8 bytes: %02x %02x %02x %02x %02x %02x %02x %02x = 0x%016" PRIx64
              " (little-endian) = \"%s\"\n",
              first[0], first[1], first[2], first[3], first[4], first[5], first[6], first[7], magic,
              text.c_str());
  int status = 0;
  if (o.expect_magic) {
    if (magic == o.magic) {
      std::printf("probe: magic OK (0x%016" PRIx64 ")\n", magic);
    } else {
      std::printf("probe: MAGIC MISMATCH: expected 0x%016" PRIx64 ", read 0x%016" PRIx64 "\n",
                  o.magic, magic);
      status = 1;
    }
  }

  if (!o.mark.empty() && region_size >= 16) {
    for (size_t i = 0; i < 8; ++i) region[8 + i] = i < o.mark.size() ? o.mark[i] : 0;
    std::printf("probe: wrote \"%s\" at bytes 8..15 of the region\n", o.mark.substr(0, 8).c_str());
  }

  size_t regs_size = 0;
  auto* regs = static_cast<volatile uint32_t*>(map_resource(dir + "/resource0", &regs_size));
  if (!regs) return 2;
  std::printf("probe: resource0 mapped: %zu bytes; IVPosition (own peer id) = %u\n", regs_size,
              regs[kRegIVPosition / 4]);
  if (o.doorbell) {
    __sync_synchronize();  // the mark is in the region before the host is told
    const uint32_t value = (o.peer << 16) | (o.vector & 0xffff);
    regs[kRegDoorbell / 4] = value;
    std::printf("probe: doorbell written: 0x%08x (peer %u, vector %u)\n", value, o.peer, o.vector);
  }
  munmap(const_cast<uint32_t*>(regs), regs_size);
  munmap(const_cast<uint8_t*>(region), region_size);
  return status;
}

}  // namespace

int main(int argc, char** argv) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto value = [&]() -> std::string {
      if (i + 1 >= argc) usage(2);
      return argv[++i];
    };
    if (a == "--expect-magic") {
      o.expect_magic = true;
      o.magic = std::strtoull(value().c_str(), nullptr, 16);
    } else if (a == "--mark") {
      o.mark = value();
    } else if (a == "--peer") {
      o.peer = static_cast<uint32_t>(std::strtoul(value().c_str(), nullptr, 0));
    } else if (a == "--vector") {
      o.vector = static_cast<uint32_t>(std::strtoul(value().c_str(), nullptr, 0));
    } else if (a == "--no-doorbell") {
      o.doorbell = false;
    } else if (a == "--sysfs") {
      o.sysfs = value();
    } else if (a == "--help" || a == "-h") {
      usage(0);
    } else {
      std::fprintf(stderr, "probe: unknown argument %s\n", a.c_str());
      usage(2);
    }
  }

  std::vector<std::string> bdfs;
  if (DIR* d = opendir(o.sysfs.c_str())) {
    while (dirent* e = readdir(d)) {
      if (e->d_name[0] == '.') continue;
      const std::string dir = o.sysfs + "/" + e->d_name;
      if (read_line(dir + "/vendor") == "0x1af4" && read_line(dir + "/device") == "0x1110")
        bdfs.push_back(e->d_name);
    }
    closedir(d);
  } else {
    std::fprintf(stderr, "probe: error: cannot list %s: %s\n", o.sysfs.c_str(), std::strerror(errno));
    return 2;
  }
  if (bdfs.empty()) {
    std::printf("probe: NO ivshmem device (PCI 1af4:1110) in %s\n", o.sysfs.c_str());
    return 2;
  }
  std::sort(bdfs.begin(), bdfs.end());
  int status = 0;
  for (const std::string& bdf : bdfs) status = std::max(status, probe(o.sysfs + "/" + bdf, bdf, o));
  std::printf("probe: %s\n", status == 0 ? "PASS" : "FAIL");
  return status;
}
