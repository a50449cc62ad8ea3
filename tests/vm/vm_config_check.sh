#!/usr/bin/env bash
# config.vm_example: config/vm-example.conf (two [vm.<id>] sections) starts the
# real mediator as written (only its sockets moved into a temporary folder and
# the reference executor chosen on the command line): both VM sockets listen
# with the configured region sizes and channel counts, and SIGTERM stops it with
# nothing allocated. Also what the README's troubleshooting promises: a region
# size that is not a power of two, two VMs on one socket and a config with
# nothing to serve are refused at start (status 2) with a clear message. No VM.
#
#   tests/vm/vm_config_check.sh --mediator PATH --config FILE
set -uo pipefail

MEDIATOR="" CONFIG=""
while (($#)); do
  case "$1" in
    --mediator) MEDIATOR="${2:-}"; shift 2 ;;
    --config) CONFIG="${2:-}"; shift 2 ;;
    *) echo "config.vm_example: unknown argument $1" >&2; exit 2 ;;
  esac
done
fail() {
  echo "config.vm_example: FAIL: $*"
  exit 1
}
[[ -x "$MEDIATOR" && -f "$CONFIG" ]] || fail "usage: vm_config_check.sh --mediator PATH --config FILE"

TMP="$(mktemp -d "${TMPDIR:-/tmp}/vgpu-config.XXXXXX")" || fail "mktemp"
MED_PID=""
cleanup() {
  if [[ -n "$MED_PID" ]] && kill -0 "$MED_PID" 2>/dev/null; then
    kill -KILL "$MED_PID" 2>/dev/null
    wait "$MED_PID" 2>/dev/null
  fi
  rm -rf "$TMP"
}
trap cleanup EXIT
problems=()

# --- the example as written ------------------------------------------------------------
grep -q '^socket="/run/vgpu/' "$CONFIG" || fail "$CONFIG has no socket=\"/run/vgpu/...\" lines to move"
sed "s|^socket=\"/run/vgpu/|socket=\"$TMP/|" "$CONFIG" >"$TMP/example.conf"
LOG="$TMP/example.log"
"$MEDIATOR" --config-file="$TMP/example.conf" --mediator.executor=reference --mediator.log-file="$LOG" \
  >"$TMP/stderr" 2>&1 &
MED_PID=$!
for _ in $(seq 100); do
  grep -q 'mediator ready' "$LOG" 2>/dev/null && break
  kill -0 "$MED_PID" 2>/dev/null || break
  sleep 0.1
done
echo "config.vm_example: $CONFIG (sockets moved to $TMP):"
grep -v '^;' "$TMP/example.conf" | grep -v '^$' | sed 's/^/  /'
mapfile -t vms < <(sed -n 's/^\[vm\.\([^]]*\)\]$/\1/p' "$CONFIG")
((${#vms[@]} >= 2)) || problems+=("the example should show at least two [vm.<id>] sections, it has ${#vms[@]}")
for id in "${vms[@]}"; do
  # The section's own values, as the log must show them.
  section="$(awk -v s="[vm.$id]" '$0 == s {on = 1; next} /^\[/ {on = 0} on' "$CONFIG")"
  size="$(sed -n 's/^region-size=\([0-9]*\)$/\1/p' <<<"$section")"
  channels="$(sed -n 's/^channels=\([0-9]*\)$/\1/p' <<<"$section")"
  [[ -n "$size" && -n "$channels" ]] || { problems+=("[vm.$id] lacks region-size= or channels="); continue; }
  weight="$(sed -n 's/^weight=\([0-9]*\)$/\1/p' <<<"$section")"
  want="vm_id=$id: waiting for QEMU on $TMP/vm$id.sock (region $((size >> 20)) MiB, $channels channels, weight ${weight:-1})"
  grep -qF "$want" "$LOG" || problems+=("no log line '$want'")
  limit="$(sed -n 's/^memory-limit-mb=\([0-9]*\)$/\1/p' <<<"$section")"
  if [[ -n "$limit" && "$limit" != 0 ]]; then
    want="vm_id=$id: memory limit $limit MiB (all its processes together)"
    grep -qF "$want" "$LOG" || problems+=("no log line '$want'")
  fi
  [[ -S "$TMP/vm$id.sock" ]] || problems+=("no socket $TMP/vm$id.sock")
done
grep -q "mediator ready: listening on no local socket and ${#vms[@]} VM socket(s)" "$LOG" ||
  problems+=("no 'mediator ready: listening on no local socket and ${#vms[@]} VM socket(s)' line")
if kill -0 "$MED_PID" 2>/dev/null; then
  kill -TERM "$MED_PID"
  status=0
  wait "$MED_PID" || status=$?
  MED_PID=""
  ((status == 0)) || problems+=("the mediator exited with status $status after SIGTERM")
else
  problems+=("the mediator did not keep running: $(cat "$TMP/stderr")")
fi
tail -n1 "$LOG" | grep -q 'executor bytes still allocated: 0)$' || problems+=("the last log line is not the clean stop")
echo "config.vm_example: the mediator's log:"
sed 's/^/  /' "$LOG"

# --- what is refused at start ----------------------------------------------------------
refused() {  # NAME MESSAGE CONFIG_TEXT: the mediator must exit 2 and log MESSAGE
  printf '%s\n' "$3" >"$TMP/$1.conf"
  local st=0
  "$MEDIATOR" --config-file="$TMP/$1.conf" >"$TMP/$1.out" 2>&1 || st=$?
  if ((st == 2)) && grep -qF "$2" "$TMP/$1.out"; then
    echo "config.vm_example: PASS: $1 refused: $(grep -F "$2" "$TMP/$1.out" | sed 's/^\[[^]]*\] //')"
  else
    problems+=("$1: expected status 2 and '$2', got status $st: $(tr '\n' ' ' <"$TMP/$1.out")")
  fi
}
base='[mediator]
socket-path=""
executor="reference"'
refused region-not-power-of-two "vm.111.region-size must be a power of two" "$base
[vm.111]
socket=\"$TMP/a.sock\"
region-size=100000000"
refused shared-socket "share the socket $TMP/b.sock" "$base
[vm.111]
socket=\"$TMP/b.sock\"
[vm.112]
socket=\"$TMP/b.sock\""
refused nothing-to-serve "nothing to serve: socket-path is empty and no [vm.<id>] section is configured" "$base"
refused region-too-small "vm.111: region too small" "$base
[vm.111]
socket=\"$TMP/c.sock\"
region-size=1048576
channels=16"

# --- who may connect: socket-group and socket-mode ---------------------------------------
"$MEDIATOR" --mediator.socket-path="$TMP/mode.sock" --mediator.executor=reference \
  --mediator.socket-mode=0660 --mediator.socket-group="$(id -gn)" >"$TMP/mode.out" 2>&1 &
mode_pid=$!
for _ in $(seq 1 100); do [[ -S "$TMP/mode.sock" ]] && break; sleep 0.1; done
mode="$(stat -c %a "$TMP/mode.sock" 2>/dev/null || echo none)"
group="$(stat -c %G "$TMP/mode.sock" 2>/dev/null || echo none)"
kill "$mode_pid" 2>/dev/null
wait "$mode_pid" 2>/dev/null
if [[ "$mode" == 660 && "$group" == "$(id -gn)" ]]; then
  echo "config.vm_example: PASS: socket-mode 0660 and socket-group $group applied to the socket"
else
  problems+=("socket-mode/socket-group: the socket has mode $mode group $group: $(tr '\n' ' ' <"$TMP/mode.out")")
fi

if ((${#problems[@]})); then
  for p in "${problems[@]}"; do echo "config.vm_example: FAIL: $p"; done
  exit 1
fi
echo "config.vm_example: PASS: ${#vms[@]} VMs served as configured; bad [vm.<id>] configs refused at start"
