#!/usr/bin/env bash
# Packs a built tree for the GPU test machine, which has NVIDIA's driver and
# toolkit but none of our Debian libraries (see shared/notes/gpu-machine.md).
#
#   tools/package-device.sh [PKG_DIR]        (default: .device, git-ignored)
#
# Layout written (PKG_DIR is emptied first):
#   bin/    vgpu-mediator vgpu-guest-test vgpu-raw-client vgpu-demo vgpu-latency
#           vgpu-kernel-test vgpu-kernel-bench, and libvgpu_kernels_dl.so (the
#           library vgpu-kernel-test dlopen()s: it looks beside itself)
#   lib/    libvgpu-executor-cuda.so            (the mediator's --mediator.module-dir)
#   shim/   libcudart.so.13 and the other guest libraries of build/shim/lib
#   deps/   every non-system shared library that `ldd` names for the above
#           (CAF, spdlog, fmt, prometheus-cpp, civetweb, ...), symlinks followed
#   vgpu-mediator.conf, MANIFEST.txt
# Left out of deps/: glibc's pieces (libc, libm, ld-linux, libpthread, libdl,
# librt, ...), libstdc++ and libgcc_s (the GPU machine's are newer), and
# NVIDIA's libraries (libcuda, libcudart, cuBLAS, ...: the machine has the real
# ones, and the mediator must use those).
#
# Then run it there, e.g. with the device tool: carry [".device"], command
#   tools/gpu-check.sh .device
# Environment: VGPU_BUILD_DIR (default: build).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

BUILD_DIR="${VGPU_BUILD_DIR:-build}"
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR="$ROOT/$BUILD_DIR" ;; esac
PKG="${1:-.device}"
case "$PKG" in /*) ;; *) PKG="$ROOT/$PKG" ;; esac

say() { printf 'package-device: %s\n' "$*"; }
warn() { printf 'package-device: warning: %s\n' "$*" >&2; }
die() { printf 'package-device: error: %s\n' "$*" >&2; exit 1; }

REQUIRED_BINS=(vgpu-mediator)
GUEST_BINS=(vgpu-guest-test vgpu-driver-test vgpu-raw-client vgpu-demo vgpu-latency vgpu-kernel-test vgpu-kernel-bench)
# Guest libraries that go beside the guest programs in bin/.
# Test programs of the other guest libraries: taken when built.
OPTIONAL_BINS=(vgpu-cublas-test vgpu-cublaslt-test vgpu-graph-test vgpu-nvml-test vgpu-smi vgpu-ggml-pattern vgpu-bench
               vgpu-limits-test vgpuctl)
# Scripts gpu-check runs (PyTorch through vgpu; vgpu-bench's compare.py).
SCRIPTS=(tools/gpu/vgpu-pytorch-check tools/gpu/pytorch_check.py tools/bench/compare.py)
GUEST_LIBS=(libvgpu_kernels_dl.so)
MODULE="$BUILD_DIR/lib/libvgpu-executor-cuda.so"
SHIM_DIR="$BUILD_DIR/shim/lib"

[[ -d "$BUILD_DIR" ]] || die "no build tree at $BUILD_DIR: run tools/build.sh first"
for b in "${REQUIRED_BINS[@]}"; do
  [[ -x "$BUILD_DIR/bin/$b" ]] || die "$BUILD_DIR/bin/$b is missing: build it first"
done
[[ -f "$MODULE" ]] || die "$MODULE is missing (the cuda executor; VGPU_BUILD_CUDA_EXECUTOR=ON?)"
[[ -e "$SHIM_DIR/libcudart.so.13" ]] || die "$SHIM_DIR/libcudart.so.13 (the guest shim) is missing"
[[ -e "$SHIM_DIR/libcuda.so.1" ]] || die "$SHIM_DIR/libcuda.so.1 (the guest driver shim) is missing"

rm -rf "$PKG"
mkdir -p "$PKG/bin" "$PKG/lib" "$PKG/shim" "$PKG/deps"

elves=()
for b in "${REQUIRED_BINS[@]}" "${GUEST_BINS[@]}"; do
  if [[ -x "$BUILD_DIR/bin/$b" ]]; then
    cp -L "$BUILD_DIR/bin/$b" "$PKG/bin/$b"
    elves+=("$PKG/bin/$b")
  else
    warn "$BUILD_DIR/bin/$b is missing; gpu-check will report it MISSING"
  fi
done
for b in "${OPTIONAL_BINS[@]}"; do
  if [[ -x "$BUILD_DIR/bin/$b" ]]; then
    cp -L "$BUILD_DIR/bin/$b" "$PKG/bin/$b"
    elves+=("$PKG/bin/$b")
  fi
done
for f in "${SCRIPTS[@]}"; do
  cp -f "$ROOT/$f" "$PKG/bin/"
done
# vgpu-driver-test's module images: it looks beside itself first.
for f in "$BUILD_DIR"/tests/kernels/driver_kernels.fatbin "$BUILD_DIR"/tests/kernels/driver_kernels.ptx; do
  if [[ -f "$f" ]]; then cp -f "$f" "$PKG/bin/"; else warn "$f is missing; vgpu-driver-test's module checks will fail"; fi
done
for l in "${GUEST_LIBS[@]}"; do
  if [[ -f "$BUILD_DIR/lib/$l" ]]; then
    cp -L "$BUILD_DIR/lib/$l" "$PKG/bin/$l"
    elves+=("$PKG/bin/$l")
  else
    warn "$BUILD_DIR/lib/$l is missing; vgpu-kernel-test's dlopen check will fail"
  fi
done
cp -L "$MODULE" "$PKG/lib/"
elves+=("$PKG/lib/$(basename "$MODULE")")
# Every guest library the shim folder holds, under its own name (symlinks
# become copies: the device tool carries links only as links).
for f in "$SHIM_DIR"/*.so*; do
  [[ -e "$f" ]] || continue
  cp -L "$f" "$PKG/shim/$(basename "$f")"
  elves+=("$PKG/shim/$(basename "$f")")
done
cp -f "$ROOT/config/vgpu-mediator.conf" "$PKG/vgpu-mediator.conf"

# Libraries the GPU machine provides itself (or must provide: NVIDIA's).
system_lib() {
  case "$1" in
    linux-vdso.so* | linux-gate.so* | ld-linux*.so* | ld64.so*) return 0 ;;
    libc.so* | libm.so* | libmvec.so* | libpthread.so* | libdl.so* | librt.so*) return 0 ;;
    libresolv.so* | libutil.so* | libanl.so* | libnsl.so* | libBrokenLocale.so*) return 0 ;;
    libstdc++.so* | libgcc_s.so*) return 0 ;;
    libcuda.so* | libcudart.so* | libcublas.so* | libcublasLt.so* | libnvidia-*.so*) return 0 ;;
    libnvrtc*.so* | libnvJitLink.so* | libcufft*.so* | libcurand.so* | libcusparse.so*) return 0 ;;
    libcusolver*.so* | libnvToolsExt.so* | libnvtx*.so*) return 0 ;;
  esac
  return 1
}

declare -A copied=()
unresolved=()
for elf in "${elves[@]}"; do
  # ldd of our own copies: resolve against the build machine's libraries.
  while read -r name arrow path _; do
    [[ "$arrow" == "=>" ]] || continue
    system_lib "$name" && continue
    if [[ "$path" == "not" ]]; then
      unresolved+=("$name (needed by $(basename "$elf"))")
      continue
    fi
    case "$path" in "$BUILD_DIR"/* | "$PKG"/*) continue ;; esac   # our own
    [[ -n "${copied[$name]:-}" ]] && continue
    cp -L "$path" "$PKG/deps/$name"
    copied[$name]="$path"
  done < <(ldd "$elf" 2>/dev/null || true)
done
if ((${#unresolved[@]} > 0)); then
  die "ldd cannot resolve: ${unresolved[*]}"
fi

{
  echo "vgpu device package"
  echo "made:   $(date -u +%Y-%m-%dT%H:%M:%SZ) on $(uname -n)"
  echo "source: $(git -C "$ROOT" describe --always --dirty 2>/dev/null || echo unknown)"
  echo "build:  $BUILD_DIR"
  echo
  echo "deps (from ldd):"
  for n in $(printf '%s\n' "${!copied[@]}" | sort); do echo "  $n <- ${copied[$n]}"; done
  echo
  echo "files:"
  (cd "$PKG" && find . -type f ! -name MANIFEST.txt | sort | sed 's/^\.\//  /')
} >"$PKG/MANIFEST.txt"

size_kib=$(du -sk "$PKG" | cut -f1)
say "wrote $PKG: $(find "$PKG" -type f | wc -l) files, $((size_kib / 1024)) MiB"
say "deps: ${!copied[*]}"
if ((size_kib > 48 * 1024)); then
  warn "$PKG is $((size_kib / 1024)) MiB: the device tool carries at most 64 MiB with the working tree"
fi
say "next: on the GPU machine (device tool: carry [\".device\"]): tools/gpu-check.sh ${1:-.device}"
