#!/usr/bin/env bash
# The cuBLAS check on the GPU test machine, from a folder made by
# tools/package-device.sh (plus bin/vgpu-cublas-test, which that script copies
# when it is built). Runs the cuBLAS guest program
#   (a) through vgpu: mediator with the cuda executor, the guest in a mount
#       namespace with /dev/nvidia* hidden, LD_LIBRARY_PATH=PKG/shim;
#   (b) natively on NVIDIA's libraries;
# then the SGEMM-64 call rate both ways (the target: vgpu >= 0.8 x native).
#
#   tools/gpu-cublas-check.sh [PKG_DIR]      (default .device; needs root)
# Logs in $OUT when set, else /tmp/vgpu-cublas-check. Exit non-zero when a vgpu
# or native check failed.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
PKG="$(cd "${1:-.device}" && pwd)" || exit 2
CUDA_LIB=/usr/local/cuda/lib64
WORK=/tmp/vgpu-cublas-check
LOGDIR="${OUT:-$WORK}"
SOCK="$WORK/m.sock"
mkdir -p "$WORK" "$LOGDIR"
rm -f "$SOCK"
GUEST="$PKG/bin/vgpu-cublas-test"
[[ -x "$GUEST" ]] || { echo "gpu-cublas-check: $GUEST missing" >&2; exit 2; }
CONF="$PKG/vgpu-mediator.conf"
[[ -f "$CONF" ]] || CONF="$ROOT/config/vgpu-mediator.conf"

HIDE='for f in /dev/nvidia* /dev/nvidia-caps/*; do
  if [ -c "$f" ]; then mount --bind /dev/null "$f" || exit 97; fi
done; exec "$@"'

LD_LIBRARY_PATH="$PKG/deps:$CUDA_LIB" "$PKG/bin/vgpu-mediator" --config-file="$CONF" --mediator.executor=cuda \
  --mediator.module-dir="$PKG/lib" --mediator.socket-path="$SOCK" </dev/null >"$LOGDIR/mediator.log" 2>&1 &
MPID=$!
for _ in $(seq 300); do [[ -S "$SOCK" ]] && break; sleep 0.1; done
[[ -S "$SOCK" ]] || { echo "mediator did not start:"; cat "$LOGDIR/mediator.log"; exit 1; }

vgpu() { timeout 300 unshare -m sh -c "$HIDE" sh env LD_LIBRARY_PATH="$PKG/shim:$PKG/deps" VGPU_SOCKET="$SOCK" "$@"; }
native() { timeout 300 env LD_LIBRARY_PATH="$CUDA_LIB" "$@"; }

rc=0
echo "=== vgpu: checks"; vgpu "$GUEST" --expect-vgpu checks 2>&1 | tee "$LOGDIR/vgpu-checks.log"; [[ ${PIPESTATUS[0]} -eq 0 ]] || rc=1
echo "=== native: checks"; native "$GUEST" checks 2>&1 | tee "$LOGDIR/native-checks.log"; [[ ${PIPESTATUS[0]} -eq 0 ]] || rc=1
echo "=== SGEMM 64 call rate"
native "$GUEST" bench --seconds 3 --size 64 2>&1 | tee -a "$LOGDIR/bench.log"
vgpu "$GUEST" --expect-vgpu bench --seconds 3 --size 64 2>&1 | tee -a "$LOGDIR/bench.log"
kill "$MPID" 2>/dev/null; wait "$MPID" 2>/dev/null
echo "=== mediator log (tail)"; tail -n 30 "$LOGDIR/mediator.log"
exit $rc
