#!/usr/bin/env bash
# vm.e2e: the whole VM path, end to end. Starts the real vgpu-mediator
# (reference executor, no local socket, one [vm.<id>] section: 64 MiB region,
# 4 channels), boots the test VM (QEMU TCG, never KVM) with QEMU's stock
# ivshmem-doorbell device attached to that VM's socket, and runs
# tests/vm/vm_e2e_guest.sh inside it: vgpu-guest-test (integrity with sizes up
# to 64 MiB, errors, async, two processes at once, a process killed with
# SIGKILL in the middle of its calls beside another, then a fresh one) and
# vgpu-latency, all through the shim over the PCI BAR (VGPU_TRANSPORT=pci).
# After the VM powered off it checks the mediator's log:
#   - QEMU connected with a 64 MiB region and 4 channels;
#   - one channel claim per guest process;
#   - the killed process's channel: released, or reclaimed with what its owner
#     left freed, before anyone else used it;
#   - the session ended when QEMU went away ("ended (guest disconnected)");
#   - the mediator was still running, and after SIGTERM its last line says
#     "executor bytes still allocated: 0".
# The VM's console and the mediator's log are printed (and kept in --work-dir
# as vm_e2e.console.log and vm_e2e.mediator.log). Missing QEMU, busybox-static
# or the kernel package is a FAILURE, never a skip (tools/install-deps.sh).
#
#   tests/vm/vm_e2e.sh --mediator PATH --guest-test PATH --latency PATH
#                      --shim-dir DIR --guest-dir DIR --work-dir DIR
# Environment: VGPU_VM_E2E_TIMEOUT  seconds the VM may run (default 780)
#              VGPU_VM_E2E_SMP      the guest's CPUs (default 1)
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
MEDIATOR="" GUEST_TEST="" LATENCY="" SHIM="" GUEST="" WORK=""
while (($#)); do
  case "$1" in
    --mediator) MEDIATOR="${2:-}"; shift 2 ;;
    --guest-test) GUEST_TEST="${2:-}"; shift 2 ;;
    --latency) LATENCY="${2:-}"; shift 2 ;;
    --shim-dir) SHIM="${2:-}"; shift 2 ;;
    --guest-dir) GUEST="${2:-}"; shift 2 ;;
    --work-dir) WORK="${2:-}"; shift 2 ;;
    *) echo "vm.e2e: unknown argument $1" >&2; exit 2 ;;
  esac
done
VM_ID=111
REGION=67108864
CHANNELS=4
VM_TIMEOUT="${VGPU_VM_E2E_TIMEOUT:-780}"
VM_SMP="${VGPU_VM_E2E_SMP:-1}"

fail() {
  echo "vm.e2e: FAIL: $*"
  exit 1
}

# Prerequisites, each a failure with the fix in the message.
[[ -n "$MEDIATOR" && -n "$GUEST_TEST" && -n "$LATENCY" && -n "$SHIM" && -n "$GUEST" && -n "$WORK" ]] ||
  fail "usage: vm_e2e.sh --mediator PATH --guest-test PATH --latency PATH --shim-dir DIR --guest-dir DIR --work-dir DIR"
command -v qemu-system-x86_64 >/dev/null 2>&1 ||
  fail "qemu-system-x86_64 is not installed: run tools/install-deps.sh (Debian package qemu-system-x86)"
for exe in "$MEDIATOR" "$GUEST_TEST" "$LATENCY"; do
  [[ -x "$exe" ]] || fail "$exe was not built (targets vgpu-mediator, vgpu-guest-test, vgpu-latency; vgpu-latency needs VGPU_BUILD_TOOLS=ON)"
done
[[ -e "$SHIM/libcudart.so.13" ]] || fail "the shim $SHIM/libcudart.so.13 was not built (target cudart_shim)"
mkdir -p "$WORK" || fail "cannot create $WORK"
WORK="$(cd "$WORK" && pwd)"

echo "vm.e2e: building the guest into $GUEST (cached after the first run)"
"$ROOT/tools/vm/build-guest.sh" "$GUEST" ||
  fail "tools/vm/build-guest.sh failed (above): it needs busybox-static, cpio and Debian's kernel package (apt-get download linux-image-...; tools/install-deps.sh)"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/vgpu-vm-e2e.XXXXXX")" || fail "mktemp"
SOCK="$TMP/vm$VM_ID.sock"
CONF="$TMP/mediator.conf"
LOG="$WORK/vm_e2e.mediator.log"
CONSOLE="$WORK/vm_e2e.console.log"
MED_PID=""
cleanup() {
  if [[ -n "$MED_PID" ]] && kill -0 "$MED_PID" 2>/dev/null; then
    kill -KILL "$MED_PID" 2>/dev/null
    wait "$MED_PID" 2>/dev/null
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'echo "vm.e2e: FAIL: interrupted"; exit 1' INT TERM

[[ "$SOCK$LOG" != *[\"$'\n']* ]] || fail "paths with a double quote or a line break cannot go into the config: $SOCK $LOG"
rm -f "$LOG" "$CONSOLE"  # spdlog appends to an existing log
cat >"$CONF" <<EOF
; written by tests/vm/vm_e2e.sh
[mediator]
socket-path=""
executor="reference"
log-level="info"
log-file="$LOG"
stats-interval-s=5

[vm.$VM_ID]
socket="$SOCK"
region-size=$REGION
channels=$CHANNELS

[scheduler]
policy='sharing'
max-threads=2
EOF
echo "vm.e2e: the mediator's configuration ($CONF):"
sed 's/^/  /' "$CONF"

"$MEDIATOR" --config-file="$CONF" >"$TMP/mediator.stderr" 2>&1 &
MED_PID=$!
for _ in $(seq 300); do
  [[ -S "$SOCK" ]] && grep -q 'mediator ready' "$LOG" 2>/dev/null && break
  kill -0 "$MED_PID" 2>/dev/null || break
  sleep 0.1
done
if ! [[ -S "$SOCK" ]] || ! grep -q 'mediator ready' "$LOG" 2>/dev/null; then
  cat "$TMP/mediator.stderr" "$LOG" 2>/dev/null
  fail "the mediator did not start listening on $SOCK within 30 s"
fi
echo "vm.e2e: mediator running (pid $MED_PID), listening on $SOCK"

echo "vm.e2e: the VM's console follows"
echo "------------------------------------------------------------------------"
start=$(date +%s%N)
vm_status=0
"$ROOT/tools/vm/run-in-vm.sh" --guest "$GUEST" --socket "$SOCK" --timeout "$VM_TIMEOUT" --smp "$VM_SMP" --log "$CONSOLE" -- \
  /bin/sh "$HERE/vm_e2e_guest.sh" "$GUEST_TEST" "$LATENCY" "$SHIM" || vm_status=$?
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
echo "------------------------------------------------------------------------"

problems=()
((vm_status == 0)) || problems+=("run-in-vm.sh exited with status $vm_status (the guest script's, or the harness's: see above)")
grep -q '^VM-E2E: PASSED' "$CONSOLE" || problems+=("the guest script did not print VM-E2E: PASSED")

# QEMU is gone: the mediator notices the hang-up and ends the session.
for _ in $(seq 100); do
  grep -q "vm_id=$VM_ID: session [0-9]* ended (guest disconnected)" "$LOG" && break
  sleep 0.1
done
if kill -0 "$MED_PID" 2>/dev/null; then
  mediator_alive=1
else
  mediator_alive=0
  problems+=("the mediator died while serving the VM (its stderr: $(tr '\n' ' ' <"$TMP/mediator.stderr"))")
fi
if ((mediator_alive)); then
  kill -TERM "$MED_PID"
  for _ in $(seq 300); do
    kill -0 "$MED_PID" 2>/dev/null || break
    sleep 0.1
  done
  if kill -0 "$MED_PID" 2>/dev/null; then
    problems+=("the mediator did not stop within 30 s of SIGTERM")
    kill -KILL "$MED_PID" 2>/dev/null
  fi
  med_status=0
  wait "$MED_PID" || med_status=$?
  MED_PID=""
  ((med_status == 0)) || problems+=("the mediator exited with status $med_status after SIGTERM")
fi

echo "vm.e2e: the mediator's log ($LOG):"
sed 's/^/  /' "$LOG"
if [[ -s "$TMP/mediator.stderr" ]]; then
  echo "vm.e2e: the mediator's stderr:"
  sed 's/^/  /' "$TMP/mediator.stderr"
fi

# --- the mediator's log --------------------------------------------------------------
grep -qE "vm_id=$VM_ID: \[CONNECTION\] QEMU connected on .*region 64 MiB, $CHANNELS channel\(s\)" "$LOG" ||
  problems+=("no '[vgpu] vm_id=$VM_ID: [CONNECTION] QEMU connected ... region 64 MiB, $CHANNELS channel(s)' line")
mapfile -t claims < <(grep -E "vm_id=$VM_ID: channel [0-9]+ claimed by a guest process \(generation [0-9]+\)" "$LOG")
procs="$(sed -n 's/^VM-E2E: \([0-9]*\) guest processes$/\1/p' "$CONSOLE" | tail -n1)"
soak="$(sed -n 's/^VM-E2E: soak is guest process #\([0-9]*\)$/\1/p' "$CONSOLE" | tail -n1)"
if [[ -z "$procs" || -z "$soak" ]]; then
  problems+=("the guest script did not say how many guest processes it ran (did it finish?)")
elif ((${#claims[@]} != procs)); then
  problems+=("${#claims[@]} channel claims logged ('channel N claimed by a guest process'), the guest ran $procs processes")
else
  # The soak's channel; the next line about that channel must free what it held.
  soak_line="${claims[soak - 1]}"
  soak_channel="$(sed -E 's/.* channel ([0-9]+) claimed .*/\1/' <<<"$soak_line")"
  freed_line="$(awk -v claim="$soak_line" -v ch="channel $soak_channel " '
    found && index($0, ch) { print; exit }
    $0 == claim { found = 1 }' "$LOG")"
  if [[ "$freed_line" == *"channel $soak_channel released: its guest process is gone"* ||
        "$freed_line" =~ channel\ $soak_channel\ claimed\ by\ a\ guest\ process\ \(generation\ [0-9]+\):\ freed\ what\ its\ previous\ owner\ left ]]; then
    echo "vm.e2e: the killed process held channel $soak_channel; the mediator freed it: ${freed_line#*] }"
  else
    problems+=("after the killed process's claim of channel $soak_channel, no 'channel $soak_channel released: its guest process is gone' or 'claimed by a guest process (generation G): freed what its previous owner left' line (next line about it: '${freed_line:-none}')")
  fi
fi
grep -qE "vm_id=$VM_ID: session [0-9]+ ended \(guest disconnected\)" "$LOG" ||
  problems+=("no 'session ... ended (guest disconnected)' line: the mediator did not notice QEMU going away")
last="$(tail -n1 "$LOG")"
[[ "$last" == *"mediator stopped. Total processed: "*"(executor bytes still allocated: 0)" ]] ||
  problems+=("the mediator's last line is not 'mediator stopped. Total processed: N (executor bytes still allocated: 0)': '$last'")
if grep -q '\[error\]' "$LOG"; then
  problems+=("the mediator logged errors: $(grep '\[error\]' "$LOG" | head -n3 | tr '\n' ' ')")
fi

echo "vm.e2e: guest figures:"
grep -E '^VM-E2E: PASS: integrity \(|^VM-E2E: PASS: integrity-seed|^    \[latency\] ' "$CONSOLE" | sed 's/^/  /'
if ((${#problems[@]})); then
  for p in "${problems[@]}"; do echo "vm.e2e: FAIL: $p"; done
  echo "vm.e2e: logs kept in $CONSOLE and $LOG"
  exit 1
fi
echo "vm.e2e: PASS: the guest used vgpu over the PCI BAR ($procs guest processes, one killed), the mediator freed the dead process's channel, ended the session when QEMU left and stopped with nothing allocated (VM run ${elapsed} ms)"
