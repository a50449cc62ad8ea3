#!/usr/bin/env bash
# Builds the test VM's guest: OUTDIR/vmlinux (Debian's kernel, uncompressed for a
# fast PVH boot; OUTDIR/vmlinuz, the compressed one, when extraction fails) and
# OUTDIR/initrd.gz (busybox, tools/vm/guest-init.sh as /init, the virtio and 9p
# modules from the same kernel package). Everything comes from Debian's archive:
# busybox-static from the host (tools/install-deps.sh installs it), the kernel
# package fetched with `apt-get download` (no root needed) into a cache.
#
#   tools/vm/build-guest.sh OUTDIR
#
# A second run with the same kernel package and the same scripts does nothing.
# Environment:
#   VGPU_VM_CACHE   cache folder for the kernel package (.deb, about 70 MB)
#                   (default ${XDG_CACHE_HOME:-$HOME/.cache}/vgpu-vm, else
#                   ${TMPDIR:-/tmp}/vgpu-vm-cache-UID when that is not writable)
#   VGPU_VM_KERNEL_PKG  use this kernel package instead of linux-image-amd64's dependency
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
say() { printf 'build-guest: %s\n' "$*" >&2; }
die() { printf 'build-guest: error: %s\n' "$*" >&2; exit 1; }

(($# == 1)) || die "usage: $0 OUTDIR"
OUT="$1"
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
CACHE="${VGPU_VM_CACHE:-${XDG_CACHE_HOME:-${HOME:-/nonexistent}/.cache}/vgpu-vm}"
if ! mkdir -p "$CACHE" 2>/dev/null || [[ ! -w "$CACHE" ]]; then
  [[ -z "${VGPU_VM_CACHE:-}" ]] || die "cannot write the cache folder VGPU_VM_CACHE=$CACHE"
  CACHE="${TMPDIR:-/tmp}/vgpu-vm-cache-$(id -u)"   # e.g. a user without a home
  mkdir -p "$CACHE"
fi
CACHE="$(cd "$CACHE" && pwd)"

for tool in apt-cache apt-get dpkg-deb cpio gzip python3; do
  command -v "$tool" >/dev/null 2>&1 ||
    die "$tool not found (Debian 12 with tools/install-deps.sh: cpio, python3, apt)"
done
BUSYBOX=/bin/busybox
APPLETS="$("$BUSYBOX" --list 2>/dev/null || true)"
grep -qx insmod <<<"$APPLETS" ||
  die "$BUSYBOX not found or not busybox-static: install the Debian package busybox-static (tools/install-deps.sh)"
if ldd "$BUSYBOX" >/dev/null 2>&1; then
  die "$BUSYBOX is dynamically linked: install busybox-static (it replaces busybox)"
fi

# 1. Which kernel package: what linux-image-amd64 depends on now (the ABI number
#    is not pinned), else the newest one already in the cache (offline).
KPKG="${VGPU_VM_KERNEL_PKG:-}"
if [[ -z "$KPKG" ]]; then
  KPKG="$(apt-cache depends linux-image-amd64 2>/dev/null |
    awk '/Depends: linux-image-[0-9]/ && !n++ {print $2}' || true)"
fi
DEB=""
if [[ -n "$KPKG" ]]; then
  KVER_APT="$(apt-cache policy "$KPKG" 2>/dev/null | awk '/Candidate:/ && !n++ {print $2}' || true)"
  [[ -n "$KVER_APT" && "$KVER_APT" != "(none)" ]] || die "apt-cache knows no candidate version of $KPKG"
  # apt-get download names the file PKG_VERSION_ARCH.deb with ':' in the version as %3a.
  DEB="$CACHE/${KPKG}_${KVER_APT//:/%3a}_amd64.deb"
else
  DEB="$(ls -t "$CACHE"/linux-image-*_amd64.deb 2>/dev/null | head -n1 || true)"
  if [[ -z "$DEB" ]]; then
    if [[ -s "$OUT/initrd.gz" && -f "$OUT/guest.stamp" ]]; then
      say "apt-cache does not know linux-image-amd64: keeping the guest already in $OUT"
      exit 0
    fi
    die "apt-cache does not know linux-image-amd64 and the cache $CACHE has no kernel package.
  Run tools/install-deps.sh (it runs apt-get update when apt's lists lack the kernel)."
  fi
  say "apt-cache does not know linux-image-amd64: using the cached $(basename "$DEB")"
fi

# 2. Is OUTDIR already up to date? The stamp names the package, busybox and the scripts.
stamp_of() {
  {
    echo "deb=$(basename "$DEB")"
    echo "busybox=$(stat -c '%s %Y' "$BUSYBOX")"
    sha256sum "$HERE/build-guest.sh" "$HERE/guest-init.sh" | awk '{print $1}'
  } | sha256sum | awk '{print $1}'
}
STAMP="$(stamp_of)"
if [[ -f "$OUT/guest.stamp" && "$(cat "$OUT/guest.stamp")" == "$STAMP" && -s "$OUT/initrd.gz" ]] &&
   [[ -s "$OUT/vmlinux" || -s "$OUT/vmlinuz" ]]; then
  say "up to date: $OUT ($(basename "$DEB"))"
  exit 0
fi

if [[ ! -s "$DEB" ]]; then
  say "downloading $KPKG $KVER_APT with apt-get download into $CACHE"
  # As root, apt downloads as the _apt user when that user can write the folder
  # (the cache may be under root's private home: download in a temporary one).
  tmpdl="$(mktemp -d "${TMPDIR:-/tmp}/vgpu-vm-download.XXXXXX")"
  trap 'rm -rf "$tmpdl"' EXIT
  chmod 0777 "$tmpdl" 2>/dev/null || true
  (cd "$tmpdl" && apt-get download "$KPKG=$KVER_APT" >&2) ||
    die "apt-get download $KPKG=$KVER_APT failed (network to Debian's archive? run tools/install-deps.sh for apt's lists)"
  got="$(ls "$tmpdl"/*.deb 2>/dev/null | head -n1 || true)"
  [[ -n "$got" ]] || die "apt-get download $KPKG left no .deb"
  mv -f "$got" "$DEB.part" && mv -f "$DEB.part" "$DEB"
  rm -rf "$tmpdl"
  trap - EXIT
fi

# 3. Extract the package (about 450 MB unpacked) into a scratch folder, removed
#    at the end: only the .deb stays in the cache.
WORK="$(mktemp -d "$OUT/.build.XXXXXX")"
trap 'rm -rf "$WORK"' EXIT
KROOT="$WORK/kernel-package"
say "extracting $(basename "$DEB")"
dpkg-deb -x "$DEB" "$KROOT" || die "dpkg-deb -x $DEB failed (a damaged download? remove it from $CACHE)"
VMLINUZ="$(ls "$KROOT"/boot/vmlinuz-* 2>/dev/null | head -n1 || true)"
[[ -n "$VMLINUZ" ]] || die "$(basename "$DEB") has no boot/vmlinuz-*"
KREL="${VMLINUZ##*/vmlinuz-}"
MODDIR="$KROOT/lib/modules/$KREL"
[[ -d "$MODDIR" ]] || die "$(basename "$DEB") has no lib/modules/$KREL"

# 4. The kernel: uncompressed vmlinux (PVH entry, ~2.4 s faster to boot under
#    TCG), else the compressed bzImage.
rm -f "$OUT/vmlinux" "$OUT/vmlinuz"
if python3 - "$VMLINUZ" "$WORK/vmlinux" <<'EOF'
import lzma, sys
data = open(sys.argv[1], "rb").read()
magics = [(b"\xfd7zXZ\x00", lambda b: lzma.LZMADecompressor(format=lzma.FORMAT_XZ).decompress(b))]
try:
    import zstandard  # not needed for Debian 12's xz-compressed kernels
    magics.append((b"\x28\xb5\x2f\xfd", lambda b: zstandard.ZstdDecompressor().decompressobj().decompress(b)))
except ImportError:
    pass
for magic, dec in magics:
    off = data.find(magic)
    while off >= 0:
        try:
            out = dec(data[off:])
        except Exception:
            out = b""
        if out[:4] == b"\x7fELF":
            open(sys.argv[2], "wb").write(out)
            sys.exit(0)
        off = data.find(magic, off + 1)
sys.exit(1)
EOF
then
  mv "$WORK/vmlinux" "$OUT/vmlinux"
  say "kernel: $OUT/vmlinux ($KREL, uncompressed)"
else
  cp "$VMLINUZ" "$OUT/vmlinuz"
  say "kernel: could not extract an ELF vmlinux; using the compressed $OUT/vmlinuz ($KREL)"
fi

# 5. The modules virtio-pci and 9p over virtio need, in load order (their
#    dependencies first; built-in ones skipped).
ROOTFS="$WORK/root"
mkdir -p "$ROOTFS"/{bin,dev,proc,sys,host,lib/modules,tmp}
python3 - "$MODDIR" "$ROOTFS/lib/modules" <<'EOF'
# The package ships no modules.dep (depmod makes it at install time): read each
# module's own `depends=` from its ELF .modinfo section instead.
import gzip, lzma, os, struct, sys
moddir, dest = sys.argv[1], sys.argv[2]
wanted = ["virtio_pci", "9pnet_virtio", "9p"]
EXTS = (".ko", ".ko.xz", ".ko.gz", ".ko.zst")

def load(path):
    data = open(path, "rb").read()
    if path.endswith(".xz"):
        return lzma.decompress(data)
    if path.endswith(".gz"):
        return gzip.decompress(data)
    if path.endswith(".zst"):
        sys.exit(f"build-guest: error: {path} is zstd-compressed; add zstd support here")
    return data

def modinfo(elf):
    if elf[:4] != b"\x7fELF" or elf[4] != 2:
        return {}
    shoff, = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)
    secs = [struct.unpack_from("<IIQQQQ", elf, shoff + i * shentsize) for i in range(shnum)]
    stroff = secs[shstrndx][4]
    for name, _t, _f, _a, off, size in secs:
        end = elf.index(b"\0", stroff + name)
        if elf[stroff + name:end] == b".modinfo":
            info = {}
            for kv in elf[off:off + size].split(b"\0"):
                k, _, v = kv.decode("utf-8", "replace").partition("=")
                info.setdefault(k, v)
            return info
    return {}

name_to_path = {}
for root, _dirs, files in os.walk(moddir):
    for f in files:
        for ext in EXTS:
            if f.endswith(ext):
                name_to_path[f[: -len(ext)].replace("-", "_")] = os.path.join(root, f)
builtin = set()
try:
    for line in open(os.path.join(moddir, "modules.builtin")):
        b = os.path.basename(line.strip())
        builtin.add((b[:-3] if b.endswith(".ko") else b).replace("-", "_"))
except FileNotFoundError:
    pass

order, blobs = [], {}
def visit(name, chain):
    name = name.replace("-", "_")
    if name in order or name in builtin:
        return
    if name not in name_to_path:
        sys.exit(f"build-guest: error: module {name} (needed by {' <- '.join(chain) or 'the guest'}) "
                 "is neither in the package nor built in")
    if name in chain:
        sys.exit(f"build-guest: error: module dependency cycle: {' <- '.join(chain + [name])}")
    blob = load(name_to_path[name])
    for d in filter(None, modinfo(blob).get("depends", "").split(",")):
        visit(d, chain + [name])
    order.append(name)
    blobs[name] = blob

for w in wanted:
    visit(w, [])
with open(os.path.join(dest, "order"), "w") as f:
    for name in order:
        open(os.path.join(dest, name + ".ko"), "wb").write(blobs[name])
        f.write(name + ".ko\n")
print("build-guest: modules: " + " ".join(order), file=sys.stderr)
EOF

# 6. busybox, /init, the initramfs.
cp "$BUSYBOX" "$ROOTFS/bin/busybox"
for applet in $APPLETS; do
  [[ "$applet" == busybox || "$applet" == */* ]] || ln -s busybox "$ROOTFS/bin/$applet"
done
cp "$HERE/guest-init.sh" "$ROOTFS/init"
chmod 0755 "$ROOTFS/init"
printf '%s\n' "$KREL" >"$ROOTFS/kernel-release"
(cd "$ROOTFS" && find . -print0 | LC_ALL=C sort -z |
  cpio --null -o -H newc --owner=0:0 --quiet) | gzip -6 >"$WORK/initrd.gz"
mv "$WORK/initrd.gz" "$OUT/initrd.gz"
printf '%s\n' "$STAMP" >"$OUT/guest.stamp"
say "initramfs: $OUT/initrd.gz ($(stat -c %s "$OUT/initrd.gz") bytes); guest ready in $OUT"
