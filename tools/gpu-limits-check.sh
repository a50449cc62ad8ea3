#!/usr/bin/env bash
# gpu-limits-check.sh: per-VM memory limits on the real GPU (cuda executor).
#
#   tools/gpu-limits-check.sh [PKG_DIR]      (PKG_DIR: tools/package-device.sh's, default .device)
#
# Starts two mediators on the same GPU, each a tenant with its own limit
# (--mediator.local-memory-limit-mb: A 256 MiB, B 1024 MiB), and runs
# vgpu-limits-test through vgpu against both at once: on each, every allocation
# kind (cudaMalloc, cuMemAlloc, cuMemCreate, cudaMallocAsync, cuMemAllocAsync)
# stops at that mediator's limit with the right error, and cudaMemGetInfo,
# cuMemGetInfo and NVML report total = the limit and the same free. Then, on A,
# two processes share the 256 MiB (one holds 192 MiB and exits without
# freeing; a third one finds everything free again). Each mediator's log must
# show its limit refused once at warn. Guests run with the shim on
# LD_LIBRARY_PATH; as root, also with /dev/nvidia* hidden, as gpu-check.sh does.
# Exit 0 when everything passed. Logs in $OUT (if set) or /tmp/vgpu-limits-check.
set -u
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PKG="$(cd "${1:-.device}" 2>/dev/null && pwd)" || { echo "gpu-limits-check: no package folder ${1:-.device}" >&2; exit 2; }
CUDA_LIB=/usr/local/cuda/lib64
EXECUTOR="${VGPU_LIMITS_EXECUTOR:-cuda}"  # reference: try this script on a machine without a GPU
MEDIATOR="$PKG/bin/vgpu-mediator"
TEST="$PKG/bin/vgpu-limits-test"
CONF="$PKG/vgpu-mediator.conf"
[[ -f "$CONF" ]] || CONF="$ROOT/config/vgpu-mediator.conf"
WORK="$(mktemp -d /tmp/vgpu-limits-check.XXXXXX)"
LOGDIR="${OUT:-/tmp/vgpu-limits-check}"
mkdir -p "$LOGDIR"
for f in "$MEDIATOR" "$TEST" "$PKG/lib/libvgpu-executor-cuda.so" "$PKG/shim/libcudart.so.13" \
  "$PKG/shim/libcuda.so.1" "$PKG/shim/libnvidia-ml.so.1"; do
  [[ -e "$f" ]] || { echo "gpu-limits-check: $f is missing (tools/build.sh && tools/package-device.sh)" >&2; exit 2; }
done

HIDE='for f in /dev/nvidia* /dev/nvidia-caps/*; do
  if [ -c "$f" ]; then mount --bind /dev/null "$f" || exit 97; fi
done
exec "$@"'
# guest SOCKET LOG ARGS...: vgpu-limits-test through vgpu (driver hidden when root).
guest() {
  local sock="$1" log="$2"
  shift 2
  if [[ "$(id -u)" -eq 0 ]]; then
    timeout 300 unshare -m sh -c "$HIDE" sh env LD_LIBRARY_PATH="$PKG/shim:$PKG/deps" VGPU_SOCKET="$sock" \
      "$TEST" "$@" </dev/null >"$log" 2>&1
  else
    timeout 300 env LD_LIBRARY_PATH="$PKG/shim:$PKG/deps" VGPU_SOCKET="$sock" "$TEST" "$@" </dev/null >"$log" 2>&1
  fi
}

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill -TERM "$p" 2>/dev/null; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
  rm -rf "$WORK"
}
trap cleanup EXIT

# start_mediator NAME LIMIT_MB
start_mediator() {
  local sock="$WORK/$1.sock"
  LD_LIBRARY_PATH="$PKG/deps:$CUDA_LIB" "$MEDIATOR" --config-file="$CONF" --mediator.executor="$EXECUTOR" \
    --mediator.module-dir="$PKG/lib" --mediator.socket-path="$sock" --mediator.local-memory-limit-mb="$2" \
    </dev/null >"$LOGDIR/mediator-$1.log" 2>&1 &
  PIDS+=($!)
  for _ in $(seq 600); do
    [[ -S "$sock" ]] && return 0
    sleep 0.1
  done
  echo "gpu-limits-check: mediator $1 did not start:"
  tail -n 40 "$LOGDIR/mediator-$1.log"
  exit 1
}

failed=0
result() {  # result WHAT STATUS LOG
  if [[ "$2" -eq 0 ]] && ! grep -q '^FAIL' "$3" && grep -q '^PASS' "$3"; then
    echo "PASS  $1"
  else
    echo "FAIL  $1 (exit $2; $3):"
    grep '^FAIL' "$3" | head -n 20
    failed=1
  fi
}

start_mediator a 256
start_mediator b 1024

# Both tenants at once, each against its own limit.
guest "$WORK/a.sock" "$LOGDIR/a-all.log" --limit-mb 256 & pa=$!
guest "$WORK/b.sock" "$LOGDIR/b-all.log" --limit-mb 1024 & pb=$!
wait "$pa"; sa=$?
wait "$pb"; sb=$?
result "mediator A (256 MiB): every allocation kind, three reports agree" "$sa" "$LOGDIR/a-all.log"
result "mediator B (1024 MiB): every allocation kind, three reports agree" "$sb" "$LOGDIR/b-all.log"

# Two processes of tenant A share its budget; an exit gives the share back.
guest "$WORK/a.sock" "$LOGDIR/a-holder.log" --limit-mb 256 --hold-mb 192 --release-file "$WORK/release" & ph=$!
for _ in $(seq 1200); do
  grep -q '^HOLDING' "$LOGDIR/a-holder.log" 2>/dev/null && break
  kill -0 "$ph" 2>/dev/null || break
  sleep 0.1
done
guest "$WORK/a.sock" "$LOGDIR/a-other.log" --limit-mb 256 --others-mb 192; so=$?
touch "$WORK/release"
wait "$ph"; sh=$?
guest "$WORK/a.sock" "$LOGDIR/a-after.log" --limit-mb 256 --wait-free; sf=$?
result "mediator A: a process holding 192 MiB (exits without freeing)" "$sh" "$LOGDIR/a-holder.log"
result "mediator A: a second process gets only the other 64 MiB" "$so" "$LOGDIR/a-other.log"
result "mediator A: after the holder's exit the whole 256 MiB is free again" "$sf" "$LOGDIR/a-after.log"

for m in "a 256" "b 1024"; do
  set -- $m
  n="$(grep -c "vm_id=local: memory limit of $2 MiB reached" "$LOGDIR/mediator-$1.log")"
  if [[ "$n" -eq 1 ]]; then
    echo "PASS  mediator ${1^^}: the refusal logged once at warn with the VM and the limit"
  else
    echo "FAIL  mediator ${1^^}: 'memory limit of $2 MiB reached' logged $n times (want 1)"
    failed=1
  fi
done
echo "logs: $LOGDIR"
exit "$failed"
