#!/bin/sh
# The guest half of vm.guest_setup (tests/vm/guest_setup.sh runs it inside the
# test VM as root, in `chroot /host`). Checks tools/guest/vgpu-guest-setup.sh on
# the real ivshmem-doorbell device, then a CUDA program through vgpu as an
# unprivileged user with and without the group:
#   1. memory decode off (0 written to `enable`): the shim refuses, saying so
#   2. the setup script turns it on and gives resource0/resource2 to the group
#      (here `users`: the test VM's root is the host's, read-only), mode 0660
#   3. a second run changes nothing (`enable` stays 1: it counts enables)
#   4. uid 65534 with the group: vgpu-guest-test device passes over the PCI BAR
#   5. uid 65534 without it: refused
#   6. a missing group, a folder that is not the device: exit status 1
# Prints `GUEST-SETUP: PASS: ...` / `GUEST-SETUP: FAIL: ...`, exits 1 on any failure.
#
#   guest_setup_guest.sh SETUP_SCRIPT GUEST_TEST SHIM_DIR
set -u

if [ $# -ne 3 ]; then
  echo "usage: guest_setup_guest.sh SETUP_SCRIPT GUEST_TEST SHIM_DIR" >&2
  exit 2
fi
SETUP=$1
GT=$2
export LD_LIBRARY_PATH="$3"
export VGPU_TRANSPORT=pci
GROUP=users
NOBODY=65534

W=$(mktemp -d "${TMPDIR:-/tmp}/guest-setup.XXXXXX") || { echo "GUEST-SETUP: FAIL: mktemp"; exit 1; }
chmod 0755 "$W"
failures=0
pass() { echo "GUEST-SETUP: PASS: $*"; }
# fail MESSAGE: also shows the whole output of the last command run.
fail() {
  echo "GUEST-SETUP: FAIL: $*"
  failures=$((failures + 1))
  if [ -n "${name:-}" ] && [ -f "$W/$name.out" ]; then
    echo "GUEST-SETUP: the whole output of $name:"
    sed "s/^/    [$name] /" "$W/$name.out"
  fi
}
# run NAME CMD...: runs CMD, output in $W/NAME.out, status in $rc. Shows the
# output without the test program's per-check PASS/FAIL lines (its SUMMARY
# line counts them; a failed check below shows them all).
run() {
  name=$1
  shift
  rc=0
  "$@" >"$W/$name.out" 2>&1 || rc=$?
  grep -v -e '^PASS ' -e '^FAIL ' "$W/$name.out" | sed "s/^/    [$name] /"
}
perms() {  # "group mode" of resource0 and resource2
  echo "$(stat -c '%G %a' "$dev/resource0") $(stat -c '%G %a' "$dev/resource2")"
}

dev=""
for d in /sys/bus/pci/devices/*; do
  [ "$(cat "$d/vendor" 2>/dev/null)" = 0x1af4 ] && [ "$(cat "$d/device" 2>/dev/null)" = 0x1110 ] && dev=$d
done
name=""
if [ -z "$dev" ]; then
  fail "no ivshmem device (PCI 1af4:1110) in /sys/bus/pci/devices"
  exit 1
fi
getent group "$GROUP" >/dev/null || { fail "the group $GROUP does not exist in the host's /etc/group"; exit 1; }
gid=$(getent group "$GROUP" | cut -d: -f3)
echo "GUEST-SETUP: device ${dev##*/}; enable=$(cat "$dev/enable"); resource0/resource2: $(perms)"

# 1. memory decode off: the shim says what to do.
echo 0 >"$dev/enable"
if [ "$(cat "$dev/enable")" = 0 ]; then
  run decode-off "$GT" device --expect-vgpu
  if [ "$rc" -ne 0 ] && grep -q 'memory decoding off: write 1 to its .enable. file' "$W/decode-off.out"; then
    pass "memory decode off: the program fails and the shim says to write 1 to 'enable'"
  else
    fail "memory decode off: expected a failure with 'memory decoding off: write 1 to its 'enable' file' (status $rc)"
  fi
else
  fail "could not turn memory decode off for the test (enable=$(cat "$dev/enable"))"
fi

# 2. the setup script.
run setup-1 sh "$SETUP" --group "$GROUP"
if [ "$rc" -eq 0 ] && [ "$(cat "$dev/enable")" = 1 ] && [ "$(perms)" = "$GROUP 660 $GROUP 660" ]; then
  pass "vgpu-guest-setup.sh: memory decode on, resource0/resource2 group $GROUP mode 660"
else
  fail "vgpu-guest-setup.sh: status $rc, enable=$(cat "$dev/enable"), resource0/resource2: $(perms) (expected 0, 1, '$GROUP 660 $GROUP 660')"
fi

# 3. idempotent.
run setup-2 sh "$SETUP" --group "$GROUP" "$dev"
if [ "$rc" -eq 0 ] && [ "$(cat "$dev/enable")" = 1 ] && [ "$(perms)" = "$GROUP 660 $GROUP 660" ]; then
  pass "vgpu-guest-setup.sh again: nothing changed (enable still 1)"
else
  fail "vgpu-guest-setup.sh again: status $rc, enable=$(cat "$dev/enable"), $(perms)"
fi

# 4. an unprivileged user in the group.
cd "$W" || exit 1
run member setpriv --reuid="$NOBODY" --regid="$NOBODY" --groups="$gid" "$GT" device --expect-vgpu
if [ "$rc" -eq 0 ] && grep -q '^SUMMARY device: [1-9][0-9]* passed, 0 failed' "$W/member.out"; then
  pass "uid $NOBODY in group $GROUP: vgpu-guest-test device passed through the PCI BAR"
else
  fail "uid $NOBODY in group $GROUP: vgpu-guest-test device exited with status $rc"
fi

# 5. ... and not in it.
# (The shim skips a device it cannot open while it looks for vgpu's magic, so
# today it says "no vgpu PCI device"; "Permission denied" with the hint once
# it keeps the reason. The README's troubleshooting covers both.)
run outsider setpriv --reuid="$NOBODY" --regid="$NOBODY" --clear-groups "$GT" device --expect-vgpu
if [ "$rc" -ne 0 ] && grep -q -e 'Permission denied (the guest needs the vgpu udev rule and group' \
  -e 'no vgpu PCI device (1af4:1110 with the vgpu magic)' "$W/outsider.out"; then
  pass "uid $NOBODY without the group: refused ($(sed -n 's/.*\[cuda-transport\] cannot reach the vgpu mediator at [^:]*: //p' "$W/outsider.out" | cut -c1-90)...)"
else
  fail "uid $NOBODY without the group: expected a failure with 'Permission denied (the guest needs the vgpu udev rule and group' or 'no vgpu PCI device' (status $rc)"
fi

# 6. what the script refuses.
run no-group sh "$SETUP" --group vgpu-no-such-group
if [ "$rc" -eq 1 ] && grep -q "group 'vgpu-no-such-group' does not exist" "$W/no-group.out"; then
  pass "vgpu-guest-setup.sh with a missing group: status 1 and the fix"
else
  fail "vgpu-guest-setup.sh with a missing group: status $rc"
fi
run not-device sh "$SETUP" --group "$GROUP" /sys/bus/pci/devices/0000:00:00.0
if [ "$rc" -eq 1 ] && grep -q 'is not an ivshmem-doorbell device' "$W/not-device.out"; then
  pass "vgpu-guest-setup.sh on another device: status 1"
else
  fail "vgpu-guest-setup.sh on another device: status $rc"
fi

cd / && rm -rf "$W"
if [ "$failures" -ne 0 ]; then
  echo "GUEST-SETUP: FAILED: $failures failure(s) above"
  exit 1
fi
echo "GUEST-SETUP: PASSED"
