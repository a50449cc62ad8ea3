#!/bin/sh
# The guest half of vm.e2e (tests/vm/vm_e2e.sh runs it inside the test VM with
# /bin/sh, in `chroot /host`: the host's own programs, so dash or busybox sh).
# Every CUDA program here goes through vgpu's shim over the PCI BAR of QEMU's
# ivshmem-doorbell device (VGPU_TRANSPORT=pci: no fallback to a socket):
#
#   1. the device is there: PCI 1af4:1110 in sysfs, memory decode on
#   2. integrity --expect-vgpu    data integrity, sizes 0 B .. 64 MiB (timed)
#   3. errors --expect-vgpu, async --expect-vgpu
#   4. two guest processes at once: integrity --seed 1 and --seed 2
#   5. a guest process killed in the middle of calls: soak runs, a second guest
#      (device) starts beside it, the soak gets SIGKILL, the second must still
#      pass, then a fresh guest process must pass; the memory the mediator
#      reports free must be what it was before the soak started
#   6. vgpu-latency --iters 2000 (for the record: no assertion on time)
#
# Prints `VM-E2E: PASS: ...` / `VM-E2E: FAIL: ...` per step, the programs'
# output indented (a passing program's `PASS <check>` lines left out), `VM-E2E: soak is guest process #K`, `VM-E2E: N guest
# processes` (the host checks the mediator's channel claims against these) and
# exits 1 when anything failed.
#
#   vm_e2e_guest.sh GUEST_TEST LATENCY SHIM_DIR
set -u

if [ $# -ne 3 ]; then
  echo "usage: vm_e2e_guest.sh GUEST_TEST LATENCY SHIM_DIR" >&2
  exit 2
fi
GT=$1
LAT=$2
SHIM=$3
export LD_LIBRARY_PATH="$SHIM"
export VGPU_TRANSPORT=pci
# info: each process says once which transport it connected over.
export VGPU_LOG_LEVEL=info

W=$(mktemp -d "${TMPDIR:-/tmp}/vm-e2e.XXXXXX") || { echo "VM-E2E: FAIL: mktemp"; exit 1; }
failures=0
procs=0

say() { echo "VM-E2E: $*"; }
pass() { echo "VM-E2E: PASS: $*"; }
fail() {
  echo "VM-E2E: FAIL: $*"
  failures=$((failures + 1))
}
now_ms() {
  t=$(date +%s%N 2>/dev/null)
  case "$t" in
    '' | *[!0-9]*) t=$(($(date +%s) * 1000000000)) ;;  # a date without %N
  esac
  echo $((t / 1000000))
}
# show NAME [STATUS]: the output of guest process NAME, indented; when it
# passed (STATUS 0), without its `PASS <check>` lines (its SUMMARY counts them).
show() {
  if [ "${2:-1}" -eq 0 ]; then
    grep -v '^PASS ' "$W/$1.out" | sed "s/^/    [$1] /"
  else
    sed "s/^/    [$1] /" "$W/$1.out"
  fi
}
# Checks the output of a finished guest process: the transport it used.
check_pci() {
  if grep -q 'connected to VGPU-STUB over pci transport' "$W/$1.out"; then
    return 0
  fi
  fail "$1 did not connect over the PCI transport (no '[cuda-transport] connected to VGPU-STUB over pci transport' line)"
  return 1
}
# run NAME PROGRAM ARGS...: one guest process in the foreground, timed.
run() {
  name=$1
  shift
  procs=$((procs + 1))
  t0=$(now_ms)
  rc=0
  "$@" >"$W/$name.out" 2>&1 || rc=$?
  ms=$(($(now_ms) - t0))
  show "$name" "$rc"
  if [ "$rc" -eq 0 ]; then
    check_pci "$name" && pass "$name ($ms ms)"
  else
    fail "$name exited with status $rc ($ms ms)"
  fi
  return "$rc"
}
# start NAME PROGRAM ARGS...: one guest process in the background; its pid in $last_pid.
start() {
  name=$1
  shift
  procs=$((procs + 1))
  "$@" >"$W/$name.out" 2>&1 &
  last_pid=$!
}
# finish NAME PID T0: waits for a background guest process and reports it.
finish() {
  rc=0
  wait "$2" || rc=$?
  ms=$(($(now_ms) - $3))
  show "$1" "$rc"
  if [ "$rc" -eq 0 ]; then
    check_pci "$1" && pass "$1 ($ms ms, in parallel)"
  else
    fail "$1 exited with status $rc ($ms ms, in parallel)"
  fi
}
meminfo_free() {  # the MEMINFO line's free bytes of guest process $1's output
  sed -n 's/^MEMINFO free=\([0-9]*\) total=.*/\1/p' "$W/$1.out"
}

# --- 1. the device --------------------------------------------------------------------
dev=""
for d in /sys/bus/pci/devices/*; do
  [ "$(cat "$d/vendor" 2>/dev/null)" = 0x1af4 ] || continue
  [ "$(cat "$d/device" 2>/dev/null)" = 0x1110 ] || continue
  dev=$d
done
if [ -z "$dev" ]; then
  fail "no ivshmem device (PCI 1af4:1110) in /sys/bus/pci/devices"
  exit 1
fi
bar2=$(($(stat -c %s "$dev/resource2" 2>/dev/null || echo 0) / 1048576))
pass "ivshmem device ${dev##*/} (1af4:1110), memory decode $(cat "$dev/enable"), BAR2 $bar2 MiB"
say "guest kernel $(uname -r), $(grep -c '^processor' /proc/cpuinfo) CPU(s); shim $SHIM; VGPU_TRANSPORT=$VGPU_TRANSPORT"

# --- 2, 3. one guest process at a time --------------------------------------------------
run integrity "$GT" integrity --expect-vgpu
run errors "$GT" errors --expect-vgpu
run async "$GT" async --expect-vgpu

# --- 4. two guest processes at once --------------------------------------------------
t0=$(now_ms)
start integrity-seed1 "$GT" integrity --seed 1 --expect-vgpu
p1=$last_pid
start integrity-seed2 "$GT" integrity --seed 2 --expect-vgpu
p2=$last_pid
finish integrity-seed1 "$p1" "$t0"
finish integrity-seed2 "$p2" "$t0"

# --- 5. a guest process killed in the middle of its calls -----------------------------------
# The memory the mediator reports free before (one call, with the shim's debug
# log: it shows the doorbell as an MMIO write to the device's BAR0).
VGPU_LOG_LEVEL=debug
if run meminfo-before "$GT" meminfo; then
  grep -q 'RINGING DOORBELL: MMIO write to VGPU-STUB' "$W/meminfo-before.out" ||
    fail "meminfo-before: no '[cuda-transport] RINGING DOORBELL: MMIO write to VGPU-STUB' line at VGPU_LOG_LEVEL=debug"
fi
VGPU_LOG_LEVEL=info
free_before=$(meminfo_free meminfo-before)

start soak "$GT" soak --seconds 60 --expect-vgpu
soak_pid=$last_pid
soak_ordinal=$procs
say "soak is guest process #$soak_ordinal (pid $soak_pid)"
# Until it holds its channel (the shim says so once the mediator took it over), then 2 s of calls.
i=0
while ! grep -q 'connected to VGPU-STUB' "$W/soak.out" && [ $i -lt 600 ] && kill -0 "$soak_pid" 2>/dev/null; do
  sleep 0.1
  i=$((i + 1))
done
grep -q 'connected to VGPU-STUB over pci transport' "$W/soak.out" || fail "the soak did not connect over the PCI transport"
sleep 2
t0=$(now_ms)
start device-beside-soak "$GT" device --expect-vgpu
dev_pid=$last_pid
sleep 0.5
comm=$(cat "/proc/$soak_pid/comm" 2>/dev/null)
if [ "$comm" = vgpu-guest-test ]; then
  kill -9 "$soak_pid"
  soak_rc=0
  wait "$soak_pid" || soak_rc=$?
  show soak
  if [ "$soak_rc" -eq 137 ]; then
    pass "soak (pid $soak_pid) killed with SIGKILL in the middle of its calls"
  else
    fail "soak: expected status 137 (SIGKILL), got $soak_rc"
  fi
else
  show soak
  fail "soak (pid $soak_pid) was not running when it should have been killed (/proc/$soak_pid/comm: '$comm')"
fi
finish device-beside-soak "$dev_pid" "$t0"
# A fresh process: its channel claim releases the dead owner's channel (the
# mediator frees what the soak held).
run device-after-kill "$GT" device --expect-vgpu
if run meminfo-after "$GT" meminfo; then
  free_after=$(meminfo_free meminfo-after)
  if [ -n "$free_before" ] && [ "$free_before" = "$free_after" ]; then
    pass "free device memory after the kill is what it was before the soak ($free_after bytes)"
  else
    fail "free device memory before the soak '$free_before', after the kill '$free_after': the dead process's memory was not freed"
  fi
fi

# --- 6. the round trip of a small synchronous call, for the record ---------------------------
run latency "$LAT" --iters 2000

say "soak is guest process #$soak_ordinal"
say "$procs guest processes"
rm -rf "$W"
if [ "$failures" -ne 0 ]; then
  say "FAILED: $failures failure(s) above"
  exit 1
fi
say "PASSED: every guest check passed"
exit 0
