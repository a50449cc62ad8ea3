#!/bin/sh
# vgpu guest setup: prepares the vgpu PCI device inside a VM so that members of
# group vgpu can run CUDA programs through vgpu. The device is QEMU's stock
# ivshmem-doorbell (PCI vendor 0x1af4, device 0x1110); vgpu's libcudart.so.13
# maps its sysfs files resource0 (registers) and resource2 (the shared region)
# without a kernel driver. For each such device this script
#   - turns memory decode on (writes 1 to its sysfs `enable`) when it is off;
#   - gives resource0, resource2 (and resource2_wc) to group vgpu, mode 0660;
#   - warns about what would still stop the shim: kernel lockdown (Secure Boot)
#     forbids mapping the files (EPERM), a driver bound to the device.
# Running it again changes nothing. Run as root: at boot by vgpu-guest.service,
# when the device appears by the udev rule 99-vgpu.rules (with its sysfs path).
#
#   vgpu-guest-setup.sh [--group NAME] [--mode MODE] [DEVICE_DIR...]
#     DEVICE_DIR   a device's sysfs folder (/sys/bus/pci/devices/0000:00:03.0 or
#                  /sys/devices/...); default: every 1af4:1110 device
#     --group      the group that may use the device (default vgpu)
#     --mode       the files' mode (default 0660)
# Exit status: 0 when every device is ready (or there is none), 1 when one could
# not be prepared, 2 on bad usage.
set -u
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
PROG=vgpu-guest-setup
GROUP=vgpu
MODE=0660
PCI=/sys/bus/pci/devices

say() { echo "$PROG: $*"; }
warn() { echo "$PROG: warning: $*" >&2; }
err() { echo "$PROG: error: $*" >&2; }
usage() {
  echo "usage: vgpu-guest-setup.sh [--group NAME] [--mode MODE] [DEVICE_DIR...]" >&2
  exit 2
}

while [ $# -gt 0 ]; do
  case "$1" in
    --group) [ $# -ge 2 ] || usage; GROUP=$2; shift 2 ;;
    --mode) [ $# -ge 2 ] || usage; MODE=$2; shift 2 ;;
    -h | --help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    --) shift; break ;;
    -*) usage ;;
    *) break ;;
  esac
done
case "$MODE" in
  [0-7][0-7][0-7] | [0-7][0-7][0-7][0-7]) ;;
  *) err "--mode $MODE: expected an octal mode such as 0660"; exit 2 ;;
esac

is_vgpu_device() {
  [ "$(cat "$1/vendor" 2>/dev/null)" = 0x1af4 ] && [ "$(cat "$1/device" 2>/dev/null)" = 0x1110 ]
}

if [ $# -eq 0 ]; then
  for d in "$PCI"/*; do
    is_vgpu_device "$d" && set -- "$@" "$d"
  done
  if [ $# -eq 0 ]; then
    say "no ivshmem-doorbell device (PCI 1af4:1110) in this guest: nothing to do (is the VM started with -device ivshmem-doorbell?)"
    exit 0
  fi
fi

status=0
if ! getent group "$GROUP" >/dev/null 2>&1; then
  err "group '$GROUP' does not exist: create it (groupadd --system $GROUP) and add the users of vgpu to it (usermod -aG $GROUP USER); the device stays root-only"
  status=1
fi
lockdown=$(cat /sys/kernel/security/lockdown 2>/dev/null)
case "$lockdown" in
  *"[integrity]"* | *"[confidentiality]"*)
    warn "kernel lockdown is on ($lockdown; Secure Boot enables it): mapping the device's resource files fails with EPERM, vgpu cannot work in this guest. Boot without Secure Boot (or with lockdown=none where the kernel allows it)" ;;
esac

for dev in "$@"; do
  dev=${dev%/}
  name=${dev##*/}
  if ! is_vgpu_device "$dev"; then
    err "$dev is not an ivshmem-doorbell device (PCI 1af4:1110)"
    status=1
    continue
  fi
  # Memory decode: the PCI command register's memory bit, turned on by the
  # kernel when the device is enabled. Some firmware (qboot) leaves it off.
  if [ "$(cat "$dev/enable" 2>/dev/null)" = 0 ]; then
    if ! echo 1 >"$dev/enable" 2>/dev/null; then
      err "$name: cannot turn memory decode on (writing 1 to $dev/enable; run as root)"
      status=1
      continue
    fi
  fi
  if [ "$(cat "$dev/enable" 2>/dev/null)" = 0 ]; then
    err "$name: memory decode is still off after writing 1 to $dev/enable"
    status=1
    continue
  fi
  files=""
  for r in resource0 resource2 resource2_wc; do
    [ -e "$dev/$r" ] && files="$files $r"
  done
  case "$files" in
    *resource0*resource2*) ;;
    *)
      err "$name: no resource0/resource2 files in $dev (not an ivshmem-doorbell device with a shared-memory BAR?)"
      status=1
      continue ;;
  esac
  if getent group "$GROUP" >/dev/null 2>&1; then
    for r in $files; do
      if ! chgrp "$GROUP" "$dev/$r" || ! chmod "$MODE" "$dev/$r"; then
        err "$name: cannot set group $GROUP, mode $MODE on $dev/$r (run as root)"
        status=1
      fi
    done
  fi
  if [ -e "$dev/driver" ]; then
    drv=$(basename "$(readlink "$dev/driver")")
    warn "$name: bound to the driver $drv; vgpu maps the device from user space: unbind it (echo $name > $dev/driver/unbind)"
  fi
  bar2=$(($(stat -L -c %s "$dev/resource2" 2>/dev/null || echo 0) / 1048576))
  say "$name: memory decode on, BAR2 $bar2 MiB,$(for r in $files; do printf ' %s' "$r($(stat -L -c '%G %a' "$dev/$r" 2>/dev/null))"; done)"
done
exit "$status"
