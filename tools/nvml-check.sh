#!/usr/bin/env bash
# The NVML check: runs ON the GPU machine (as root), from a folder made by
# tools/package-device.sh on the build machine, like tools/gpu-check.sh.
#
#   tools/nvml-check.sh [PKG_DIR]        (default: .device)
#
# 1. natively: nvidia-smi, vgpu-smi and vgpu-nvml-test on NVIDIA's NVML and
#    runtime (informational: shows what the real library answers);
# 2. through vgpu (mediator with the cuda executor, guests with /dev/nvidia*
#    hidden): vgpu-smi, then vgpu-nvml-test --expect-vgpu. Checks that the
#    NVML-only guest (vgpu-smi) made the host create no CUDA context (the
#    mediator's debug line "context created"), and that the CUDA guest did.
# Exits non-zero when a vgpu check failed. Logs in $OUT when set, else
# /tmp/vgpu-nvml-check: mediator.log.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2
PKG="${1:-.device}"
[[ -d "$PKG" ]] || { echo "nvml-check: no package folder $PKG (tools/package-device.sh)" >&2; exit 2; }
PKG="$(cd "$PKG" && pwd)"
WORK=/tmp/vgpu-nvml-check
rm -rf "$WORK" && mkdir -p "$WORK"
LOGDIR="${OUT:-$WORK}"
MLOG="$LOGDIR/mediator.log"
SOCK="$WORK/m.sock"
CUDA_LIB=/usr/local/cuda/lib64
CONF="$PKG/vgpu-mediator.conf"
[[ -f "$CONF" ]] || CONF="$ROOT/config/vgpu-mediator.conf"
failures=0

say() { printf '\n== %s\n' "$*"; }
verdict() {  # verdict OK|FAIL what
  printf '%s %s\n' "$1" "$2"
  [[ "$1" == OK ]] || failures=$((failures + 1))
}
gpu_used_mib() { nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -i 0 2>/dev/null | tr -d ' '; }

# Guests run with every NVIDIA device node replaced by /dev/null, so whatever
# they learn came through vgpu.
# shellcheck disable=SC2016  # expanded by that sh
HIDE='for f in /dev/nvidia* /dev/nvidia-caps/*; do
  if [ -c "$f" ]; then mount --bind /dev/null "$f" || exit 97; fi
done
exec "$@"'
guest() {
  unshare -m sh -c "$HIDE" sh env LD_LIBRARY_PATH="$PKG/shim" VGPU_SOCKET="$SOCK" "$@"
}

say "native: nvidia-smi"
nvidia-smi || true
say "native: vgpu-smi on NVIDIA's NVML"
LD_LIBRARY_PATH="$PKG/deps" "$PKG/bin/vgpu-smi" || true
say "native: vgpu-nvml-test on NVIDIA's NVML and runtime (informational)"
LD_LIBRARY_PATH="$CUDA_LIB" "$PKG/bin/vgpu-nvml-test" || true

say "starting the mediator (executor cuda, debug log) -> $MLOG"
LD_LIBRARY_PATH="$PKG/deps:$CUDA_LIB" "$PKG/bin/vgpu-mediator" --config-file="$CONF" \
  --mediator.executor=cuda --mediator.module-dir="$PKG/lib" --mediator.socket-path="$SOCK" \
  --mediator.log-level=debug </dev/null >"$MLOG" 2>&1 &
MEDIATOR_PID=$!
for _ in $(seq 600); do
  [[ -S "$SOCK" ]] && break
  kill -0 "$MEDIATOR_PID" 2>/dev/null || break
  sleep 0.1
done
if [[ ! -S "$SOCK" ]]; then
  echo "nvml-check: the mediator did not start:"; tail -50 "$MLOG"; exit 1
fi
sleep 1
used_before=$(gpu_used_mib)

say "through vgpu: vgpu-smi (NVML only)"
if guest "$PKG/bin/vgpu-smi"; then verdict OK "vgpu-smi ran"; else verdict FAIL "vgpu-smi failed"; fi
sleep 1
contexts=$(grep -c "context created" "$MLOG")
if [[ "$contexts" -eq 0 ]]; then verdict OK "vgpu-smi made the host create no CUDA context"
else verdict FAIL "vgpu-smi made the host create $contexts CUDA context(s)"; fi
echo "GPU memory used (nvidia-smi): ${used_before} MiB before vgpu-smi, $(gpu_used_mib) MiB after"

say "through vgpu: vgpu-nvml-test --expect-vgpu"
if guest "$PKG/bin/vgpu-nvml-test" --expect-vgpu; then verdict OK "vgpu-nvml-test passed"
else verdict FAIL "vgpu-nvml-test failed"; fi
contexts=$(grep -c "context created" "$MLOG")
if [[ "$contexts" -ge 1 ]]; then verdict OK "the CUDA guest got its context ($contexts in all)"
else verdict FAIL "no context was created for the CUDA guest"; fi

kill "$MEDIATOR_PID" 2>/dev/null
wait "$MEDIATOR_PID" 2>/dev/null
say "mediator log (NVML and session lines)"
grep -E "nvml|NVML|vgpuDeviceStatus|context created|session .* (opened|closed)" "$MLOG" | tail -40
say "result"
if [[ "$failures" -eq 0 ]]; then echo "nvml-check: all vgpu checks passed"; exit 0; fi
echo "nvml-check: $failures vgpu check(s) failed"
exit 1
