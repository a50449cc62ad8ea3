#!/bin/sh
# /init of the test VM's initramfs (busybox sh; built by tools/vm/build-guest.sh).
#
# Loads the virtio and 9p modules, mounts the host's root read-only over 9p at
# /host (mount_tag hostroot), binds the guest's /proc /sys /dev into it, prepares
# every ivshmem device (PCI 1af4:1110: memory decode on, resource0/resource2
# readable and writable by anyone: a throwaway test VM), runs the command from the
# kernel command line in `chroot /host`, prints `VGPU-VM-EXIT=<status>` and powers off.
#
# Kernel command line (each value base64 without line breaks, as `base64 -w0` writes):
#   vgpu.cmd=   a shell command line, run by the host's /bin/sh -c inside the chroot
#   vgpu.env=   shell text run before it, `export NAME='value'` lines (optional)
#   vgpu.cwd=   the folder to run it in (optional; default /)
#   vgpu.tmp=host  (plain text) keep the host's /tmp visible (read-only) instead
#               of covering it with a tmpfs; /dev/shm is a tmpfs in any case
#   vgpu.script=  instead of the three above: the path (inside /host) of a file of
#               shell text holding all of it (run-in-vm.sh uses it when the
#               command line would be too long for the kernel)
# When the guest cannot be set up it prints `VGPU-VM-INIT-FAILED: <reason>` instead.
export PATH=/bin
HOSTPATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin

fail() {  # on stderr (the console), also when called inside $(...)
  echo "VGPU-VM-INIT-FAILED: $*" >&2
  poweroff -f
  sleep 5
  exit 1
}

mount -t proc proc /proc || fail "mount /proc"
mount -t sysfs sysfs /sys || fail "mount /sys"
mount -t devtmpfs devtmpfs /dev || fail "mount /dev"

# Modules in dependency order (build-guest.sh wrote the order).
while read -r m; do
  [ -n "$m" ] || continue
  out="$(insmod "/lib/modules/$m" 2>&1)" || {
    case "$out" in *"File exists"*) ;; *) fail "insmod $m: $out" ;; esac
  }
done </lib/modules/order

# 9p over virtio: the virtio-pci device may appear a moment after the module loads.
tries=0
until mount -t 9p -o trans=virtio,version=9p2000.L,ro,msize=262144 hostroot /host 2>/tmp/mount.err; do
  tries=$((tries + 1))
  [ "$tries" -lt 50 ] || fail "mount -t 9p hostroot /host: $(cat /tmp/mount.err)"
  sleep 0.1
done
# The command, its environment and folder (read before /host/tmp is covered:
# run-in-vm.sh may leave a long command in a file under the host's /tmp).
param() {
  set -f  # no globbing of the command line's words
  for w in $(cat /proc/cmdline); do
    case "$w" in "vgpu.$1="*) set +f; echo "${w#vgpu."$1"=}"; return 0 ;; esac
  done
  set +f
  return 1
}
decode() { printf '%s' "$1" | base64 -d 2>/dev/null || fail "vgpu.$2= is not valid base64"; }

if p="$(param script)"; then
  path="$(decode "$p" script)"
  script="$(cat "/host$path")" || fail "cannot read the script /host$path"
else
  p="$(param cmd)" || fail "no vgpu.cmd= on the kernel command line"
  cmd="$(decode "$p" cmd)"
  env_text=""
  if p="$(param env)"; then env_text="$(decode "$p" env)"; fi
  cwd=/
  if p="$(param cwd)"; then cwd="$(decode "$p" cwd)"; fi
  cwd_q="$(printf '%s' "$cwd" | sed "s/'/'\\\\''/g")"
  script="export PATH='$HOSTPATH'
$env_text
cd '$cwd_q' || exit 127
$cmd"
fi

mkdir -p /dev/shm && mount -t tmpfs -o mode=1777 tmpfs /dev/shm || fail "tmpfs on /dev/shm"
for d in proc sys dev; do
  mount -o rbind "/$d" "/host/$d" || fail "bind /$d into /host"
done
# Writable scratch space inside the read-only host root: a tmpfs over /tmp,
# unless vgpu.tmp=host (the command needs files under the host's /tmp).
if [ "$(param tmp)" != host ]; then
  mount -t tmpfs -o mode=1777 tmpfs /host/tmp || fail "tmpfs on /host/tmp"
fi

# ivshmem devices: PCI vendor 0x1af4, device 0x1110.
for dev in /sys/bus/pci/devices/*; do
  [ "$(cat "$dev/vendor" 2>/dev/null)" = 0x1af4 ] || continue
  [ "$(cat "$dev/device" 2>/dev/null)" = 0x1110 ] || continue
  echo 1 >"$dev/enable" || fail "enable ${dev##*/}"
  for r in resource0 resource2 resource2_wc; do
    [ -e "$dev/$r" ] && chmod 0666 "$dev/$r"
  done
  echo "vgpu-init: ivshmem device ${dev##*/} enabled"
done

chroot /host /bin/sh -c "$script"
status=$?
sync
echo "VGPU-VM-EXIT=$status"
poweroff -f
sleep 5
