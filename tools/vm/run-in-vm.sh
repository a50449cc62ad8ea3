#!/usr/bin/env bash
# Runs one command inside a throwaway QEMU VM (TCG, never KVM) whose root is the
# host's own root, read-only over 9p, so freshly built binaries run unchanged.
# Optionally attaches QEMU's stock ivshmem-doorbell device to an ivshmem server
# socket (vgpu's mediator, or tools/vm/fake-ivshmem-server.py), which must
# already be listening. Streams the VM's console to stdout and exits with the
# command's status.
#
#   tools/vm/run-in-vm.sh [options] -- COMMAND [ARG...]
#
# Options:
#   --socket PATH      attach `-device ivshmem-doorbell` to this server socket
#                      (without it the VM has no ivshmem device)
#   --vectors N        the device's MSI-X vectors (default 2; the server must send N eventfds each)
#   --timeout S        kill the VM after S seconds (default 120)
#   --mem MB           guest memory (default 512)
#   --smp N            guest CPUs (default 1)
#   --env NAME=VALUE   set an environment variable for COMMAND (repeatable; the
#                      guest starts from a clean environment with a standard PATH)
#   --cwd DIR          folder to run COMMAND in (default: the current folder)
#   --guest DIR        the guest's kernel and initramfs (default $VGPU_VM_GUEST_DIR,
#                      else <repo>/${VGPU_BUILD_DIR:-build}/vm-guest); built with
#                      tools/vm/build-guest.sh when missing or older than its scripts
#   --log FILE         also write the console to FILE
#   --tmp tmpfs|host   the guest's /tmp: a fresh tmpfs, or the host's (read-only);
#                      default tmpfs, unless the repo, the folder or an argument
#                      lies under /tmp: then host, with TMPDIR=/dev/shm (a tmpfs)
#   --qemu-arg ARG     one more QEMU argument (repeatable; nothing about KVM)
#
# Exit status: COMMAND's status inside the VM; otherwise, with a message on
# stderr: 124 the VM did not finish in time; 125 QEMU failed, the guest could not
# be set up, or the console had no `VGPU-VM-EXIT=` marker; 126 bad usage or
# something missing on the host (QEMU, the guest, the socket).
#
# COMMAND runs as root inside the guest in `chroot /host` (the host's / seen
# through 9p; /tmp (see --tmp) and /dev/shm are fresh tmpfs; /proc /sys /dev
# the guest's).
# Every ivshmem device (PCI 1af4:1110) has memory decode on and resource0/
# resource2 mode 0666, so the program can mmap them from sysfs.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$HERE/../.." && pwd)"
PROG=run-in-vm

say() { printf '%s: %s\n' "$PROG" "$*" >&2; }
usage_die() { printf '%s: error: %s\n(usage: tools/vm/run-in-vm.sh [--socket PATH] [--timeout S] [--mem MB] [--smp N] [--env NAME=VALUE]... [--cwd DIR] -- COMMAND...)\n' "$PROG" "$*" >&2; exit 126; }
die() { printf '%s: error: %s\n' "$PROG" "$1" >&2; exit "${2:-126}"; }

SOCK=""
VECTORS=2
TIMEOUT=120
MEM=512
SMP=1
CWD="$PWD"
GUEST="${VGPU_VM_GUEST_DIR:-}"
LOG=""
TMPMODE=""
ENVS=()
QEMU_EXTRA=()
while (($#)); do
  case "$1" in
    --socket) SOCK="${2:?}"; shift 2 ;;
    --vectors) VECTORS="${2:?}"; shift 2 ;;
    --timeout) TIMEOUT="${2:?}"; shift 2 ;;
    --mem) MEM="${2:?}"; shift 2 ;;
    --smp) SMP="${2:?}"; shift 2 ;;
    --env) ENVS+=("${2:?}"); shift 2 ;;
    --cwd) CWD="${2:?}"; shift 2 ;;
    --guest) GUEST="${2:?}"; shift 2 ;;
    --log) LOG="${2:?}"; shift 2 ;;
    --tmp) TMPMODE="${2:?}"; shift 2 ;;
    --qemu-arg) QEMU_EXTRA+=("${2:?}"); shift 2 ;;
    --) shift; break ;;
    -h|--help) sed -n '2,/^set -euo/p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) usage_die "unknown option $1 (the command goes after --)" ;;
  esac
done
(($# > 0)) || usage_die "no command given"
for n in "$VECTORS" "$TIMEOUT" "$MEM" "$SMP"; do
  [[ "$n" =~ ^[1-9][0-9]*$ ]] || usage_die "not a positive number: $n"
done
for a in "${QEMU_EXTRA[@]}"; do
  [[ "${a,,}" != *kvm* ]] || usage_die "--qemu-arg $a: this harness never uses KVM (the Debian kernel hangs on this host's /dev/kvm)"
done

# --- the host side: QEMU, the guest, the socket -------------------------------
QEMU="$(command -v qemu-system-x86_64 || true)"
[[ -n "$QEMU" ]] ||
  die "qemu-system-x86_64 not found: install the Debian package qemu-system-x86 (tools/install-deps.sh does)"
if [[ -z "$GUEST" ]]; then
  GUEST="$ROOT/${VGPU_BUILD_DIR:-build}/vm-guest"
  [[ "$GUEST" == /* ]] || GUEST="$ROOT/$GUEST"
fi
KERNEL="$GUEST/vmlinux"
[[ -s "$KERNEL" ]] || KERNEL="$GUEST/vmlinuz"
# Built when missing or older than its scripts (build-guest.sh itself also
# follows kernel updates in apt; it takes about a second even when up to date).
if [[ ! -s "$KERNEL" || ! -s "$GUEST/initrd.gz" || "$HERE/guest-init.sh" -nt "$GUEST/initrd.gz" ||
      "$HERE/build-guest.sh" -nt "$GUEST/initrd.gz" ]]; then
  "$HERE/build-guest.sh" "$GUEST" >&2 || die "building the guest into $GUEST failed (above)"
  KERNEL="$GUEST/vmlinux"
  [[ -s "$KERNEL" ]] || KERNEL="$GUEST/vmlinuz"
fi
[[ -s "$KERNEL" && -s "$GUEST/initrd.gz" ]] || die "no kernel or initrd.gz in $GUEST"

DEVICE_ARGS=()
if [[ -n "$SOCK" ]]; then
  [[ -S "$SOCK" ]] ||
    die "--socket $SOCK: no UNIX socket there; start the ivshmem server (the mediator) first: QEMU connects once and never retries"
  # QEMU's option syntax doubles commas inside a value.
  DEVICE_ARGS=(-chardev "socket,path=${SOCK//,/,,},id=vgpu0"
               -device "ivshmem-doorbell,chardev=vgpu0,vectors=$VECTORS")
fi

# --- the command, its environment and folder, for the kernel command line ------
squote() { printf "'%s'" "${1//\'/\'\\\'\'}"; }
cmd="exec"
for a in "$@"; do cmd+=" $(squote "$a")"; done
# A tmpfs over the guest's /tmp would hide a build tree under the host's /tmp.
under_tmp() { [[ "$(realpath -m -- "$1" 2>/dev/null)" == /tmp/* ]]; }
if [[ -z "$TMPMODE" ]]; then
  TMPMODE=tmpfs
  for p in "$ROOT" "$CWD" "$@"; do
    if [[ "$p" == /* || "$p" == "$ROOT" || "$p" == "$CWD" ]] && under_tmp "$p"; then TMPMODE=host; fi
  done
  if [[ "$TMPMODE" == host ]] && [[ " ${ENVS[*]} " != *" TMPDIR="* ]]; then
    ENVS+=("TMPDIR=/dev/shm")
    say "the host's /tmp stays visible in the guest (read-only): TMPDIR=/dev/shm"
  fi
fi
[[ "$TMPMODE" == tmpfs || "$TMPMODE" == host ]] || usage_die "--tmp $TMPMODE: expected tmpfs or host"
env_text=""
for e in "${ENVS[@]}"; do
  name="${e%%=*}"
  [[ "$e" == *=* && "$name" =~ ^[A-Za-z_][A-Za-z0-9_]*$ ]] || usage_die "--env $e: expected NAME=VALUE"
  env_text+="export $name=$(squote "${e#*=}")"$'\n'
done
b64() { printf '%s' "$1" | base64 -w0; }

TMP="$(mktemp -d "${TMPDIR:-/tmp}/vgpu-vm.XXXXXX")"
chmod 0755 "$TMP"  # the guest reads it through 9p
QPID=""
cleanup() {
  if [[ -n "$QPID" ]] && kill -0 "$QPID" 2>/dev/null; then kill "$QPID" 2>/dev/null || true; fi
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'say "interrupted: stopping the VM"; exit 130' INT TERM

APPEND="console=ttyS0 quiet panic=-1 rdinit=/init"
payload="vgpu.cmd=$(b64 "$cmd") vgpu.cwd=$(b64 "$CWD")"
[[ -z "$env_text" ]] || payload+=" vgpu.env=$(b64 "$env_text")"
# x86's kernel command line holds 2047 bytes: a longer command travels as a file
# the guest reads through 9p (same path inside /host).
if (( ${#APPEND} + ${#payload} + 1 > 1900 )); then
  script="$TMP/command.sh"
  {
    printf "export PATH='/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'\n"
    printf '%s' "$env_text"
    printf 'cd %s || exit 127\n' "$(squote "$CWD")"
    printf '%s\n' "$cmd"
  } >"$script"
  chmod 0644 "$script"
  payload="vgpu.script=$(b64 "$script")"
fi
APPEND+=" $payload"
[[ "$TMPMODE" == tmpfs ]] || APPEND+=" vgpu.tmp=host"

CONSOLE="${LOG:-$TMP/console.log}"
: >"$CONSOLE"
QEMU_ARGS=(
  -machine q35 -accel tcg -m "$MEM" -smp "$SMP"
  -nodefaults -display none -serial stdio -no-reboot -nic none
  -kernel "$KERNEL" -initrd "$GUEST/initrd.gz" -append "$APPEND"
  "${DEVICE_ARGS[@]}"
  -virtfs local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap
  "${QEMU_EXTRA[@]}"
)
say "booting $(basename "$KERNEL") under QEMU TCG (${MEM} MiB, ${SMP} CPU(s)${SOCK:+, ivshmem-doorbell on $SOCK}), timeout ${TIMEOUT}s: $*"
start_ns=$(date +%s%N)
# QEMU in the background, so that a signal to this script stops it; the console
# goes to stdout (without the serial line's \r) and to $CONSOLE.
{
  timeout -k 5 "$TIMEOUT" "$QEMU" "${QEMU_ARGS[@]}" </dev/null 2>&1 &
  echo $! >"$TMP/qemu.pid"
  rc=0
  wait $! || rc=$?
  echo "$rc" 2>/dev/null >"$TMP/qemu.rc" || true
} | sed -u 's/\r$//' | tee -a "$CONSOLE" &
PIPE_PID=$!
for _ in $(seq 50); do [[ -s "$TMP/qemu.pid" ]] && break; sleep 0.02; done
QPID="$(cat "$TMP/qemu.pid" 2>/dev/null || true)"
wait "$PIPE_PID" || true
QPID=""
elapsed="$(awk -v ns=$(($(date +%s%N) - start_ns)) 'BEGIN {printf "%.1f", ns / 1e9}')"
qrc="$(cat "$TMP/qemu.rc" 2>/dev/null || echo 255)"

marker="$(grep -a -E '^VGPU-VM-EXIT=[0-9]+$' "$CONSOLE" | tail -n1 || true)"
if [[ "$qrc" == 124 || "$qrc" == 137 ]]; then
  die "the VM did not finish within ${TIMEOUT}s and was killed (the console is above)" 124
fi
if failed="$(grep -a -m1 '^VGPU-VM-INIT-FAILED:' "$CONSOLE")"; then
  die "the guest could not be set up: ${failed#VGPU-VM-INIT-FAILED: }" 125
fi
if [[ -z "$marker" ]]; then
  if [[ "$qrc" != 0 ]]; then
    die "QEMU failed with status $qrc after ${elapsed}s (its message is above)" 125
  fi
  die "the VM stopped after ${elapsed}s without a VGPU-VM-EXIT= line on its console (guest crash or panic? the console is above)" 125
fi
status="${marker#VGPU-VM-EXIT=}"
say "the command exited with status $status inside the VM (boot, run and poweroff took ${elapsed}s)"
exit "$status"
