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
  libgtest-dev googletest
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
