#!/bin/sh
# vgpu guest install: run as root inside the VM, from a copy of vgpu's tools/guest
# folder (and, with --shim, of the build's shim/lib folder). Installs
#   PREFIX/sbin/vgpu-guest-setup.sh        prepares the vgpu PCI device
#   /etc/udev/rules.d/99-vgpu.rules        runs it when the device appears
#   /etc/systemd/system/vgpu-guest.service runs it at boot (enabled and started)
#   PREFIX/lib/vgpu/lib*.so*               vgpu's guest libraries (with --shim)
#   /etc/ld.so.conf.d/vgpu.conf            every program finds them (with --ldconfig)
# creates the system group vgpu, adds each --user to it, and prepares the device
# now. Running it again changes nothing that is already in place.
#
#   install.sh [--shim DIR] [--ldconfig] [--user NAME]... [--prefix DIR] [--root DIR] [--no-start]
#     --shim DIR    the folder with vgpu's libcudart.so.13* (a build's shim/lib)
#     --ldconfig    also list PREFIX/lib/vgpu in /etc/ld.so.conf.d (all programs of
#                   the guest then load vgpu's libcudart.so.13; without it, set
#                   LD_LIBRARY_PATH=PREFIX/lib/vgpu for the programs that should)
#     --user NAME   add this user to group vgpu (repeatable; takes effect at the
#                   user's next login)
#     --prefix DIR  default /usr/local
#     --root DIR    install the files under DIR (an image being built); no group,
#                   users, systemctl, udevadm or ldconfig
#     --no-start    do not start the service or replay udev now
set -eu
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
HERE=$(cd "$(dirname "$0")" && pwd)
PROG=vgpu-guest-install
say() { echo "$PROG: $*"; }
die() {
  echo "$PROG: error: $*" >&2
  exit 1
}
usage() {
  echo "usage: install.sh [--shim DIR] [--ldconfig] [--user NAME]... [--prefix DIR] [--root DIR] [--no-start]" >&2
  exit 2
}

SHIM="" LDCONF=0 USERS="" PREFIX=/usr/local DEST="" START=1
while [ $# -gt 0 ]; do
  case "$1" in
    --shim) [ $# -ge 2 ] || usage; SHIM=$2; shift 2 ;;
    --ldconfig) LDCONF=1; shift ;;
    --user) [ $# -ge 2 ] || usage; USERS="$USERS $2"; shift 2 ;;
    --prefix) [ $# -ge 2 ] || usage; PREFIX=${2%/}; shift 2 ;;
    --root) [ $# -ge 2 ] || usage; DEST=${2%/}; shift 2 ;;
    --no-start) START=0; shift ;;
    -h | --help) sed -n '2,/^set -eu/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) usage ;;
  esac
done
case "$PREFIX" in /*) ;; *) die "--prefix $PREFIX: an absolute path, please" ;; esac
[ -n "$DEST" ] || [ "$(id -u)" = 0 ] || die "run as root (or with --root DIR to fill an image folder)"
for f in vgpu-guest-setup.sh 99-vgpu.rules vgpu-guest.service; do
  [ -f "$HERE/$f" ] || die "$HERE/$f is missing: copy the whole tools/guest folder"
done
if [ -n "$SHIM" ]; then
  [ -e "$SHIM/libcudart.so.13" ] || die "--shim $SHIM: no libcudart.so.13 there (it is the build's shim/lib folder)"
fi

SETUP="$PREFIX/sbin/vgpu-guest-setup.sh"
LIBDIR="$PREFIX/lib/vgpu"
# install_file SRC DEST MODE [SED_EXPR]: writes DEST only when its content changes.
install_file() {
  tmp="$2.vgpu-new.$$"
  mkdir -p "$(dirname "$2")"
  if [ $# -ge 4 ]; then sed "$4" "$1" >"$tmp"; else cat "$1" >"$tmp"; fi
  chmod "$3" "$tmp"
  if [ -f "$2" ] && cmp -s "$tmp" "$2"; then
    rm -f "$tmp"
    chmod "$3" "$2"
    say "up to date: $2"
  else
    mv -f "$tmp" "$2"
    say "installed $2"
  fi
}
subst="s|/usr/local/sbin/vgpu-guest-setup.sh|$SETUP|g"
install_file "$HERE/vgpu-guest-setup.sh" "$DEST$SETUP" 0755
install_file "$HERE/99-vgpu.rules" "$DEST/etc/udev/rules.d/99-vgpu.rules" 0644 "$subst"
install_file "$HERE/vgpu-guest.service" "$DEST/etc/systemd/system/vgpu-guest.service" 0644 "$subst"
if [ -n "$SHIM" ]; then
  mkdir -p "$DEST$LIBDIR"
  # Files and their symlinks (libcudart.so.13 -> libcudart.so.13.0.0) as they are.
  for lib in "$SHIM"/lib*.so*; do
    [ -e "$lib" ] || continue
    cp -P --remove-destination "$lib" "$DEST$LIBDIR/"
  done
  say "installed vgpu's guest libraries in $DEST$LIBDIR: $(cd "$DEST$LIBDIR" && echo lib*.so*)"
fi
if [ "$LDCONF" = 1 ]; then
  [ -n "$SHIM" ] || [ -e "$DEST$LIBDIR/libcudart.so.13" ] || die "--ldconfig needs the libraries: give --shim DIR"
  conf="$DEST/etc/ld.so.conf.d/vgpu.conf"
  mkdir -p "$(dirname "$conf")"
  if [ "$(cat "$conf" 2>/dev/null)" != "$LIBDIR" ]; then
    echo "$LIBDIR" >"$conf"
    say "installed $conf"
  fi
  if [ -z "$DEST" ]; then ldconfig; fi
fi

if [ -n "$DEST" ]; then
  say "files installed under $DEST; in the running guest, still: groupadd --system vgpu, usermod -aG vgpu USER, systemctl enable vgpu-guest.service"
  exit 0
fi

if ! getent group vgpu >/dev/null; then
  groupadd --system vgpu
  say "created the system group vgpu"
fi
for u in $USERS; do
  id "$u" >/dev/null 2>&1 || die "--user $u: no such user"
  if id -nG "$u" | tr ' ' '\n' | grep -qx vgpu; then
    say "$u is already in group vgpu"
  else
    usermod -aG vgpu "$u"
    say "added $u to group vgpu (effective at $u's next login)"
  fi
done
if [ "$START" = 1 ]; then
  if command -v udevadm >/dev/null 2>&1; then
    udevadm control --reload || true
  fi
  if command -v systemctl >/dev/null 2>&1 && [ -d /run/systemd/system ]; then
    systemctl daemon-reload
    systemctl enable vgpu-guest.service
    systemctl restart vgpu-guest.service || die "vgpu-guest.service failed: journalctl -u vgpu-guest says why"
    systemctl --no-pager --lines=5 status vgpu-guest.service || true
  else
    "$SETUP" || die "the device could not be prepared (above)"
  fi
fi
say "done. Check: ls -l /sys/bus/pci/devices/*/resource2 (group vgpu), then as a member of vgpu:"
if [ "$LDCONF" = 1 ]; then
  say "  VGPU_TRANSPORT=pci your-cuda-program"
else
  say "  LD_LIBRARY_PATH=$LIBDIR VGPU_TRANSPORT=pci your-cuda-program"
fi
