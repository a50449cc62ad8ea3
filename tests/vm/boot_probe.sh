#!/usr/bin/env bash
# vm.boot_probe: boots the test VM (QEMU TCG, Debian's kernel, the host's root
# over 9p) with QEMU's ivshmem-doorbell device attached to
# tools/vm/fake-ivshmem-server.py, runs vgpu-ivshmem-probe inside it and checks
#   - in the guest: the device is found, resource2 maps, the server's magic
#     "VGPUSTB1" (0x3142545355504756) reads back at offset 0;
#   - on the host: the guest's Doorbell (peer 0, vector 0) fired the server's
#     eventfd, and the guest's mark "GUESTOK1" is in the region.
# Missing QEMU, busybox-static or the kernel package is a FAILURE (never a
# skip): tools/install-deps.sh installs them.
#
#   tests/vm/boot_probe.sh --probe PATH --guest-dir DIR --work-dir DIR
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PROBE="" GUEST="" WORK=""
while (($#)); do
  case "$1" in
    --probe) PROBE="$2"; shift 2 ;;
    --guest-dir) GUEST="$2"; shift 2 ;;
    --work-dir) WORK="$2"; shift 2 ;;
    *) echo "boot_probe: unknown argument $1" >&2; exit 2 ;;
  esac
done
MAGIC=3142545355504756
MARK=GUESTOK1

fail() {
  echo "vm.boot_probe: FAIL: $*"
  exit 1
}

# Prerequisites, each a failure with the fix in the message.
command -v qemu-system-x86_64 >/dev/null 2>&1 ||
  fail "qemu-system-x86_64 is not installed: run tools/install-deps.sh (Debian package qemu-system-x86)"
command -v python3 >/dev/null 2>&1 || fail "python3 is not installed (tools/install-deps.sh)"
[[ -n "$PROBE" && -x "$PROBE" ]] || fail "the probe program '$PROBE' was not built (target vgpu-ivshmem-probe)"
[[ -n "$GUEST" && -n "$WORK" ]] || fail "usage: boot_probe.sh --probe PATH --guest-dir DIR --work-dir DIR"
mkdir -p "$WORK" || fail "cannot create $WORK"

echo "vm.boot_probe: building the guest into $GUEST (cached after the first run)"
"$ROOT/tools/vm/build-guest.sh" "$GUEST" ||
  fail "tools/vm/build-guest.sh failed (above): it needs busybox-static, cpio and Debian's kernel package (apt-get download linux-image-...; tools/install-deps.sh)"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/vgpu-vm-test.XXXXXX")" || fail "mktemp"
SOCK="$TMP/ivshmem.sock"
SERVER_LOG="$WORK/boot_probe.server.log"
CONSOLE="$WORK/boot_probe.console.log"
SERVER_PID=""
cleanup() {
  if [[ -n "$SERVER_PID" ]]; then
    kill "$SERVER_PID" 2>/dev/null
    wait "$SERVER_PID" 2>/dev/null
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'echo "vm.boot_probe: FAIL: interrupted"; exit 1' INT TERM

python3 "$ROOT/tools/vm/fake-ivshmem-server.py" "$SOCK" 4 >"$SERVER_LOG" 2>&1 &
SERVER_PID=$!
for _ in $(seq 100); do
  grep -q 'listening on' "$SERVER_LOG" && break
  kill -0 "$SERVER_PID" 2>/dev/null || break
  sleep 0.1
done
grep -q 'listening on' "$SERVER_LOG" || { cat "$SERVER_LOG"; fail "the fake ivshmem server did not start"; }

echo "vm.boot_probe: the VM's console follows"
echo "------------------------------------------------------------------------"
start=$(date +%s%N)
vm_status=0
"$ROOT/tools/vm/run-in-vm.sh" --guest "$GUEST" --socket "$SOCK" --timeout 240 --log "$CONSOLE" -- \
  "$PROBE" --expect-magic "$MAGIC" --mark "$MARK" --peer 0 --vector 0 || vm_status=$?
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
echo "------------------------------------------------------------------------"

# QEMU is gone: the server logs the doorbell and the disconnection.
for _ in $(seq 50); do
  grep -q 'disconnected' "$SERVER_LOG" && break
  sleep 0.1
done
kill "$SERVER_PID" 2>/dev/null
wait "$SERVER_PID" 2>/dev/null
SERVER_PID=""
echo "vm.boot_probe: the fake ivshmem server's log:"
sed 's/^/  /' "$SERVER_LOG"

problems=()
((vm_status == 0)) || problems+=("run-in-vm.sh exited with status $vm_status (the probe's, or the harness's: see its message above)")
grep -q '^probe: device .*1af4:1110' "$CONSOLE" || problems+=("the probe found no ivshmem device (PCI 1af4:1110) in the guest")
grep -q "^probe: magic OK (0x$MAGIC)" "$CONSOLE" || problems+=("the guest did not read the magic 0x$MAGIC from resource2")
grep -q 'client 1: connected' "$SERVER_LOG" || problems+=("QEMU never connected to the fake server")
grep -q 'doorbell: vector 0 fired' "$SERVER_LOG" || problems+=("the guest's Doorbell (peer 0, vector 0) did not fire the server's eventfd")
grep -q "bytes 8..15 of the region: b'$MARK'" "$SERVER_LOG" || problems+=("the server did not see the guest's mark $MARK in the region")

if ((${#problems[@]})); then
  for p in "${problems[@]}"; do echo "vm.boot_probe: FAIL: $p"; done
  echo "vm.boot_probe: logs kept in $CONSOLE and $SERVER_LOG"
  exit 1
fi
echo "vm.boot_probe: PASS: device found, magic read back, doorbell fired the host eventfd, guest write seen by the host (VM run ${elapsed} ms)"
