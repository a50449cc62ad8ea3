#!/usr/bin/env bash
# Installs what building and testing vgpu needs on Debian 12, from Debian's
# own archive (apt) and nothing else. Idempotent: when everything is present it
# changes nothing and does not even run `apt-get update`.
#
# The CUDA 13 toolkit is not a Debian package: it must already be installed at
# /usr/local/cuda (nvcc, headers, libcudart.so.13).
set -euo pipefail

PACKAGES=(
  cmake g++ make python3 pkg-config
  libcaf-dev libspdlog-dev libfmt-dev prometheus-cpp-dev
  libzstd-dev  # zstd-compressed fatbin entries (nvcc 13's default), reference executor
  libgtest-dev googletest
  # The VM test (tests/vm, tools/vm): QEMU (TCG, never KVM), the guest's busybox
  # initramfs. The guest kernel itself is not installed: tools/vm/build-guest.sh
  # fetches Debian's linux-image package with `apt-get download` (no root).
  qemu-system-x86 busybox-static cpio
)
CUDA_ROOT=/usr/local/cuda

say() { printf 'install-deps: %s\n' "$*"; }
die() { printf 'install-deps: error: %s\n' "$*" >&2; exit 1; }

# 1. The CUDA toolkit (checked first: nothing else helps without it).
nvcc="$CUDA_ROOT/bin/nvcc"
if [[ ! -x "$nvcc" ]]; then
  die "the CUDA 13 toolkit is required at $CUDA_ROOT ($nvcc not found).
  Install NVIDIA's CUDA 13 toolkit there (a GPU or driver is not needed to build;
  vgpu's reference executor runs without one). This script installs only Debian packages."
fi
cuda_release="$("$nvcc" --version 2>/dev/null | sed -n 's/.*release \([0-9][0-9]*\)\.\([0-9][0-9]*\).*/\1.\2/p' | head -n1)"
if [[ -z "$cuda_release" ]]; then
  die "cannot tell the version of $nvcc; the CUDA 13 toolkit is required at $CUDA_ROOT"
fi
if [[ "${cuda_release%%.*}" != 13 ]]; then
  die "found CUDA $cuda_release at $CUDA_ROOT; vgpu needs the CUDA 13 toolkit there (libcudart.so.13)"
fi

# 2. Debian packages.
is_installed() {
  [[ "$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null || true)" == "install ok installed" ]]
}

command -v dpkg-query >/dev/null 2>&1 || die "dpkg-query not found: this script is for Debian 12"

missing=()
for p in "${PACKAGES[@]}"; do
  is_installed "$p" || missing+=("$p")
done

# tools/vm/build-guest.sh finds the guest kernel package through apt's lists
# (`apt-cache depends linux-image-amd64`): refresh them when they do not know it.
kernel_known() {
  local deps
  deps="$(apt-cache depends linux-image-amd64 2>/dev/null || true)"
  grep -q 'Depends: linux-image-[0-9]' <<<"$deps"
}
if ((${#missing[@]} == 0)) && ! kernel_known; then
  say "apt's package lists do not know linux-image-amd64 (the VM test's kernel): apt-get update"
  if [[ "$(id -u)" -ne 0 ]]; then
    command -v sudo >/dev/null 2>&1 || die "need root to run apt-get update: run this as root, or install sudo"
    sudo env DEBIAN_FRONTEND=noninteractive apt-get update
  else
    env DEBIAN_FRONTEND=noninteractive apt-get update
  fi
  kernel_known || die "apt-cache still does not know linux-image-amd64 after apt-get update"
fi

if ((${#missing[@]} == 0)); then
  say "all packages present; CUDA $cuda_release at $CUDA_ROOT"
  exit 0
fi

say "missing: ${missing[*]}"
as_root=()
if [[ "$(id -u)" -ne 0 ]]; then
  command -v sudo >/dev/null 2>&1 ||
    die "need root to install ${missing[*]}: run this as root, or install sudo"
  as_root=(sudo)
fi
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update
"${as_root[@]}" env DEBIAN_FRONTEND=noninteractive \
  apt-get install -y --no-install-recommends "${missing[@]}"

still=()
for p in "${missing[@]}"; do
  is_installed "$p" || still+=("$p")
done
((${#still[@]} == 0)) || die "still missing after apt-get install: ${still[*]}"
say "installed ${missing[*]}; CUDA $cuda_release at $CUDA_ROOT"
