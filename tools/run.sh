#!/usr/bin/env bash
# vgpu's main job on its embedded default, in one command: installs what is
# missing, builds, starts the mediator with the default configuration
# (config/vgpu-mediator.conf) on a private socket, runs the demo guest program
# (build/bin/vgpu-demo) through vgpu, stops the mediator and prints its log.
# Exits with the demo's status.
#
#   tools/run.sh [extra mediator options]
#     e.g. tools/run.sh --mediator.log-level=debug     (one log line per call)
#          tools/run.sh --mediator.executor=reference  (CPU executor even on a GPU host)
# Environment:
#   VGPU_BUILD_DIR  build folder (default: build)
#   VGPU_JOBS       parallel build jobs (default: 2)
#   VGPU_CONFIG     mediator configuration (default: config/vgpu-mediator.conf)
#   VGPU_NO_BUILD=1 skip install-deps and the build (use what is in VGPU_BUILD_DIR)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

BUILD_DIR="${VGPU_BUILD_DIR:-build}"
case "$BUILD_DIR" in /*) ;; *) BUILD_DIR="$ROOT/$BUILD_DIR" ;; esac
CONFIG="${VGPU_CONFIG:-$ROOT/config/vgpu-mediator.conf}"
MEDIATOR="$BUILD_DIR/bin/vgpu-mediator"
DEMO="$BUILD_DIR/bin/vgpu-demo"
SHIM_DIR="$BUILD_DIR/shim/lib"

say() { printf 'run: %s\n' "$*"; }
die() { printf 'run: error: %s\n' "$*" >&2; exit 1; }

if [[ "${VGPU_NO_BUILD:-0}" != 1 ]]; then
  "$ROOT/tools/build.sh"
fi

[[ -x "$MEDIATOR" ]] || die "$MEDIATOR is missing: did the build succeed?"
[[ -x "$DEMO" ]] || die "$DEMO is missing: did the build succeed?"
[[ -e "$SHIM_DIR/libcudart.so.13" ]] || die "$SHIM_DIR/libcudart.so.13 (the guest shim) is missing"
[[ -r "$CONFIG" ]] || die "cannot read the configuration $CONFIG"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/vgpu-run.XXXXXX")"
SOCK="$TMP/vgpu.sock"
LOG="$TMP/mediator.log"
KEPT_LOG="$BUILD_DIR/run-mediator.log"
MEDIATOR_PID=""

# Stops the mediator (SIGTERM, then SIGKILL after 10 s). Sets MEDIATOR_STATUS.
MEDIATOR_STATUS=""
stop_mediator() {
  [[ -n "$MEDIATOR_PID" ]] || return 0
  if kill -0 "$MEDIATOR_PID" 2>/dev/null; then
    kill -TERM "$MEDIATOR_PID" 2>/dev/null || true
    for _ in $(seq 100); do
      kill -0 "$MEDIATOR_PID" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$MEDIATOR_PID" 2>/dev/null; then
      say "the mediator did not stop within 10 s of SIGTERM; killing it"
      kill -KILL "$MEDIATOR_PID" 2>/dev/null || true
    fi
  fi
  MEDIATOR_STATUS=0
  wait "$MEDIATOR_PID" 2>/dev/null || MEDIATOR_STATUS=$?
  MEDIATOR_PID=""
}

print_log() {
  local lines
  cp -f "$LOG" "$KEPT_LOG" 2>/dev/null || true
  lines=$(wc -l <"$LOG" 2>/dev/null || echo 0)
  echo "=================== mediator log ($lines lines; kept in $KEPT_LOG) ==================="
  if ((lines <= 300)); then
    cat "$LOG"
  else
    head -n 100 "$LOG"
    echo "... ($((lines - 250)) lines left out) ..."
    tail -n 150 "$LOG"
  fi
  echo "======================================================================================"
}

# shellcheck disable=SC2317  # called by the EXIT trap
cleanup() {
  stop_mediator
  rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say "starting $MEDIATOR --config-file=$CONFIG --mediator.socket-path=$SOCK $*"
"$MEDIATOR" --config-file="$CONFIG" --mediator.socket-path="$SOCK" "$@" </dev/null >"$LOG" 2>&1 &
MEDIATOR_PID=$!

# Wait (up to 60 s) for the socket to appear.
for _ in $(seq 600); do
  [[ -S "$SOCK" ]] && break
  if ! kill -0 "$MEDIATOR_PID" 2>/dev/null; then
    stop_mediator
    print_log
    die "the mediator exited (status $MEDIATOR_STATUS) before it opened $SOCK; its log is above"
  fi
  sleep 0.1
done
if [[ ! -S "$SOCK" ]]; then
  stop_mediator
  print_log
  die "the mediator did not open $SOCK within 60 s; its log is above"
fi
say "mediator (pid $MEDIATOR_PID) listening on $SOCK"

echo "=================== vgpu-demo through vgpu ==================="
echo "LD_LIBRARY_PATH=$SHIM_DIR VGPU_SOCKET=$SOCK $DEMO"
DEMO_STATUS=0
LD_LIBRARY_PATH="$SHIM_DIR${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}" VGPU_SOCKET="$SOCK" \
  timeout 300 "$DEMO" || DEMO_STATUS=$?
echo "=============================================================="
if ((DEMO_STATUS == 124)); then
  say "vgpu-demo did not finish within 300 s"
fi

say "stopping the mediator (SIGTERM)"
stop_mediator
print_log
say "mediator exited with status $MEDIATOR_STATUS"

if ((DEMO_STATUS == 0)); then
  say "vgpu-demo: PASS (exit 0)"
else
  say "vgpu-demo: FAILED (exit $DEMO_STATUS); see its output and the mediator log above,"
  say "and the Troubleshooting section of README.md"
fi
exit "$DEMO_STATUS"
