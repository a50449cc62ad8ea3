#!/usr/bin/env bash
# The cuBLASLt check on the GPU test machine, from a folder made by
# tools/package-device.sh (which packs bin/vgpu-cublaslt-test when it is
# built). Runs the cuBLASLt guest program
#   (a) through vgpu: mediator with the cuda executor, the guest in a mount
#       namespace with /dev/nvidia* hidden, LD_LIBRARY_PATH=PKG/shim;
#   (b) natively on NVIDIA's libraries (checks the test's own expectations).
#
#   tools/gpu-cublaslt-check.sh [PKG_DIR]      (default .device; needs root)
# Logs in $OUT when set, else /tmp/vgpu-cublaslt-check. Exit non-zero when a
# vgpu or native check failed.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
PKG="$(cd "${1:-.device}" && pwd)" || exit 2
CUDA_LIB=/usr/local/cuda/lib64
WORK=/tmp/vgpu-cublaslt-check
LOGDIR="${OUT:-$WORK}"
SOCK="$WORK/m.sock"
mkdir -p "$WORK" "$LOGDIR"
rm -f "$SOCK"
GUEST="$PKG/bin/vgpu-cublaslt-test"
[[ -x "$GUEST" ]] || { echo "gpu-cublaslt-check: $GUEST missing" >&2; exit 2; }
CONF="$PKG/vgpu-mediator.conf"
[[ -f "$CONF" ]] || CONF="$ROOT/config/vgpu-mediator.conf"

# The guest must not reach the GPU itself: only through vgpu.
HIDE='for f in /dev/nvidia* /dev/nvidia-caps/*; do
  if [ -c "$f" ]; then mount --bind /dev/null "$f" || exit 97; fi
done; exec "$@"'

LD_LIBRARY_PATH="$PKG/deps:$CUDA_LIB" "$PKG/bin/vgpu-mediator" --config-file="$CONF" --mediator.executor=cuda \
  --mediator.module-dir="$PKG/lib" --mediator.socket-path="$SOCK" --mediator.log-level=debug \
  </dev/null >"$LOGDIR/mediator.log" 2>&1 &
MPID=$!
for _ in $(seq 300); do [[ -S "$SOCK" ]] && break; sleep 0.1; done
[[ -S "$SOCK" ]] || { echo "mediator did not start:"; cat "$LOGDIR/mediator.log"; exit 1; }

vgpu() { timeout 300 unshare -m sh -c "$HIDE" sh env LD_LIBRARY_PATH="$PKG/shim:$PKG/deps" VGPU_SOCKET="$SOCK" "$@"; }
native() { timeout 300 env LD_LIBRARY_PATH="$CUDA_LIB" "$@"; }

rc=0
echo "=== vgpu (cuda executor)"; vgpu "$GUEST" --expect-vgpu 2>&1 | tee "$LOGDIR/vgpu.log"; [[ ${PIPESTATUS[0]} -eq 0 ]] || rc=1
echo "=== native"; native "$GUEST" 2>&1 | tee "$LOGDIR/native.log"; [[ ${PIPESTATUS[0]} -eq 0 ]] || rc=1
kill "$MPID" 2>/dev/null; wait "$MPID" 2>/dev/null
echo "=== mediator log (cuBLASLt lines and warnings, tail)"
grep -E "cublasLt|warn|error" "$LOGDIR/mediator.log" | tail -n 40
exit $rc
