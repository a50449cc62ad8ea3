#!/usr/bin/env bash
# vm.guest_setup: the guest-side files of tools/guest/ that the README tells
# operators to install.
#   - on the host: tools/guest/install.sh --root into a temporary folder, twice:
#     the files land where the README says, with the prefix substituted, and
#     the second run changes nothing;
#   - in the test VM (QEMU TCG, the real mediator on a [vm.<id>] socket):
#     tests/vm/guest_setup_guest.sh runs tools/guest/vgpu-guest-setup.sh on the
#     real ivshmem-doorbell device and a CUDA program through vgpu as an
#     unprivileged user with and without the group (see that script).
# Missing QEMU, busybox-static or the kernel package is a FAILURE, never a skip.
#
#   tests/vm/guest_setup.sh --mediator PATH --guest-test PATH --shim-dir DIR
#                           --guest-dir DIR --work-dir DIR
set -uo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
MEDIATOR="" GUEST_TEST="" SHIM="" GUEST="" WORK=""
while (($#)); do
  case "$1" in
    --mediator) MEDIATOR="${2:-}"; shift 2 ;;
    --guest-test) GUEST_TEST="${2:-}"; shift 2 ;;
    --shim-dir) SHIM="${2:-}"; shift 2 ;;
    --guest-dir) GUEST="${2:-}"; shift 2 ;;
    --work-dir) WORK="${2:-}"; shift 2 ;;
    *) echo "vm.guest_setup: unknown argument $1" >&2; exit 2 ;;
  esac
done
VM_ID=112

fail() {
  echo "vm.guest_setup: FAIL: $*"
  exit 1
}
[[ -n "$MEDIATOR" && -n "$GUEST_TEST" && -n "$SHIM" && -n "$GUEST" && -n "$WORK" ]] ||
  fail "usage: guest_setup.sh --mediator PATH --guest-test PATH --shim-dir DIR --guest-dir DIR --work-dir DIR"
command -v qemu-system-x86_64 >/dev/null 2>&1 ||
  fail "qemu-system-x86_64 is not installed: run tools/install-deps.sh (Debian package qemu-system-x86)"
command -v setpriv >/dev/null 2>&1 || fail "setpriv (util-linux) is not installed"
for exe in "$MEDIATOR" "$GUEST_TEST"; do
  [[ -x "$exe" ]] || fail "$exe was not built (targets vgpu-mediator, vgpu-guest-test)"
done
[[ -e "$SHIM/libcudart.so.13" ]] || fail "the shim $SHIM/libcudart.so.13 was not built (target cudart_shim)"
mkdir -p "$WORK" || fail "cannot create $WORK"
WORK="$(cd "$WORK" && pwd)"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/vgpu-vm-setup.XXXXXX")" || fail "mktemp"
MED_PID=""
cleanup() {
  if [[ -n "$MED_PID" ]] && kill -0 "$MED_PID" 2>/dev/null; then
    kill -KILL "$MED_PID" 2>/dev/null
    wait "$MED_PID" 2>/dev/null
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'echo "vm.guest_setup: FAIL: interrupted"; exit 1' INT TERM
problems=()

# --- install.sh into a folder, twice ------------------------------------------------
DEST="$TMP/root"
listing() { (cd "$DEST" && find . -printf '%M %p %l\n' | sort && find . -type f -exec md5sum {} + | sort -k2); }
echo "vm.guest_setup: tools/guest/install.sh --root $DEST --prefix /opt/vgpu --shim $SHIM --ldconfig"
if sh "$ROOT/tools/guest/install.sh" --root "$DEST" --prefix /opt/vgpu --shim "$SHIM" --ldconfig >"$TMP/install1.out" 2>&1; then
  sed 's/^/  /' "$TMP/install1.out"
  before="$(listing)"
  for f in opt/vgpu/sbin/vgpu-guest-setup.sh etc/udev/rules.d/99-vgpu.rules etc/systemd/system/vgpu-guest.service \
           opt/vgpu/lib/vgpu/libcudart.so.13 etc/ld.so.conf.d/vgpu.conf; do
    [[ -e "$DEST/$f" ]] || problems+=("install.sh did not install /$f")
  done
  [[ -x "$DEST/opt/vgpu/sbin/vgpu-guest-setup.sh" ]] || problems+=("the installed vgpu-guest-setup.sh is not executable")
  grep -q 'RUN+="/opt/vgpu/sbin/vgpu-guest-setup.sh /sys%p"' "$DEST/etc/udev/rules.d/99-vgpu.rules" ||
    problems+=("the installed udev rule does not run /opt/vgpu/sbin/vgpu-guest-setup.sh")
  grep -qx 'ExecStart=/opt/vgpu/sbin/vgpu-guest-setup.sh' "$DEST/etc/systemd/system/vgpu-guest.service" ||
    problems+=("the installed unit does not run /opt/vgpu/sbin/vgpu-guest-setup.sh")
  [[ "$(cat "$DEST/etc/ld.so.conf.d/vgpu.conf" 2>/dev/null)" == /opt/vgpu/lib/vgpu ]] ||
    problems+=("/etc/ld.so.conf.d/vgpu.conf does not name /opt/vgpu/lib/vgpu")
  if sh "$ROOT/tools/guest/install.sh" --root "$DEST" --prefix /opt/vgpu --shim "$SHIM" --ldconfig >"$TMP/install2.out" 2>&1; then
    [[ "$(listing)" == "$before" ]] || problems+=("a second install.sh run changed the installed files")
    grep -q '^vgpu-guest-install: installed /' "$TMP/install2.out" &&
      problems+=("a second install.sh run rewrote files: $(grep '^vgpu-guest-install: installed /' "$TMP/install2.out" | tr '\n' ' ')")
  else
    problems+=("the second install.sh run failed: $(cat "$TMP/install2.out")")
  fi
else
  problems+=("install.sh --root failed: $(cat "$TMP/install1.out")")
fi
((${#problems[@]} == 0)) && echo "vm.guest_setup: install.sh: PASS (files in place, prefix substituted, second run changed nothing)"

# --- the mediator and the VM ---------------------------------------------------------
echo "vm.guest_setup: building the guest into $GUEST (cached after the first run)"
"$ROOT/tools/vm/build-guest.sh" "$GUEST" || fail "tools/vm/build-guest.sh failed (above)"
SOCK="$TMP/vm$VM_ID.sock"
LOG="$WORK/guest_setup.mediator.log"
CONSOLE="$WORK/guest_setup.console.log"
rm -f "$LOG" "$CONSOLE"
cat >"$TMP/mediator.conf" <<EOF
[mediator]
socket-path=""
executor="reference"
log-file="$LOG"
[vm.$VM_ID]
socket="$SOCK"
region-size=67108864
channels=4
EOF
"$MEDIATOR" --config-file="$TMP/mediator.conf" >"$TMP/mediator.stderr" 2>&1 &
MED_PID=$!
for _ in $(seq 300); do
  [[ -S "$SOCK" ]] && grep -q 'mediator ready' "$LOG" 2>/dev/null && break
  kill -0 "$MED_PID" 2>/dev/null || break
  sleep 0.1
done
[[ -S "$SOCK" ]] || { cat "$TMP/mediator.stderr" "$LOG" 2>/dev/null; fail "the mediator did not start listening on $SOCK"; }

echo "vm.guest_setup: the VM's console follows"
echo "------------------------------------------------------------------------"
vm_status=0
"$ROOT/tools/vm/run-in-vm.sh" --guest "$GUEST" --socket "$SOCK" --timeout 240 --log "$CONSOLE" -- \
  /bin/sh "$HERE/guest_setup_guest.sh" "$ROOT/tools/guest/vgpu-guest-setup.sh" "$GUEST_TEST" "$SHIM" || vm_status=$?
echo "------------------------------------------------------------------------"
((vm_status == 0)) || problems+=("run-in-vm.sh exited with status $vm_status (the guest script's, or the harness's: see above)")
grep -q '^GUEST-SETUP: PASSED' "$CONSOLE" || problems+=("the guest script did not print GUEST-SETUP: PASSED")

if kill -0 "$MED_PID" 2>/dev/null; then
  kill -TERM "$MED_PID"
  wait "$MED_PID"
  MED_PID=""
else
  problems+=("the mediator died while serving the VM")
fi
echo "vm.guest_setup: the mediator's log:"
sed 's/^/  /' "$LOG"
tail -n1 "$LOG" | grep -q 'executor bytes still allocated: 0)$' ||
  problems+=("the mediator's last line does not say 'executor bytes still allocated: 0'")

if ((${#problems[@]})); then
  for p in "${problems[@]}"; do echo "vm.guest_setup: FAIL: $p"; done
  exit 1
fi
echo "vm.guest_setup: PASS: install.sh places the files idempotently; vgpu-guest-setup.sh turns memory decode on and gives the device to the group; a member runs CUDA through vgpu, others are refused with the hint"
