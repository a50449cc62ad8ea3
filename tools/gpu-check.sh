#!/usr/bin/env bash
# The GPU check: runs ON the GPU test machine (an H100 with NVIDIA's driver and
# /usr/local/cuda, none of our Debian libraries), from a folder made by
# tools/package-device.sh on the build machine.
#
#   tools/gpu-check.sh [PKG_DIR]        (default: .device)
#
# It starts the mediator with the cuda executor, then runs each guest program
#   (a) through vgpu, in a mount namespace where /dev/nvidia* are /dev/null
#       (so the program cannot reach the driver by accident: if it passes, it
#       went through vgpu), with LD_LIBRARY_PATH=PKG_DIR/shim, and
#   (b) natively, with NVIDIA's runtime (LD_LIBRARY_PATH=/usr/local/cuda/lib64),
# prints a side-by-side table, the latency figures and the kernel figures of
# both runs (with the ratio vgpu/native and its target: informational, never a
# failure) and the mediator's log, and exits non-zero when any vgpu check failed.
#
# Logs: in $OUT when set (the device tool brings $OUT back), else in
# /tmp/vgpu-check: summary.txt (what is printed), guests.log (every run's
# output), mediator.log.
# Environment:
#   VGPU_CHECK_TIMEOUT  seconds per guest run (default 120)
#   VGPU_CHECK_ITERS    vgpu-latency --iters (default 20000)
#   VGPU_CHECK_KERNEL_ITERS  vgpu-kernel-bench --iters (default 100000)
#   VGPU_CHECK_ONLY     the groups to run, space-separated (default: all):
#                       core (guest, driver and kernel tests, demo), libs (cuBLAS,
#                       cuBLASLt, graphs, NVML test programs), bench (latency and
#                       kernel figures), pytorch (tools/gpu/pytorch_check.py run
#                       natively and through vgpu, results compared)
# Needs root (unshare -m, mount --bind).
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT" || exit 2

PKG="${1:-.device}"
if [[ ! -d "$PKG" ]]; then
  echo "gpu-check: error: no package folder $PKG (make it with tools/package-device.sh)" >&2
  exit 2
fi
PKG="$(cd "$PKG" && pwd)"
WORK=/tmp/vgpu-check
SOCK="$WORK/m.sock"
LOGDIR="${OUT:-$WORK}"
RUNS="$WORK/runs"
TIMEOUT_S="${VGPU_CHECK_TIMEOUT:-120}"
ITERS="${VGPU_CHECK_ITERS:-20000}"
KERNEL_ITERS="${VGPU_CHECK_KERNEL_ITERS:-100000}"
ONLY="${VGPU_CHECK_ONLY:-}"
LAT_VGPU="" LAT_NATIVE="" KB_VGPU="" KB_NATIVE="" BENCH_VGPU="" BENCH_NATIVE=""
CUDA_LIB=/usr/local/cuda/lib64
MEDIATOR="$PKG/bin/vgpu-mediator"
MODULE="$PKG/lib/libvgpu-executor-cuda.so"
CONF="$PKG/vgpu-mediator.conf"
[[ -f "$CONF" ]] || CONF="$ROOT/config/vgpu-mediator.conf"
SUMMARY="$LOGDIR/summary.txt"
MLOG="$LOGDIR/mediator.log"
GLOG="$LOGDIR/guests.log"

# Run in a mount namespace with every NVIDIA device node replaced by /dev/null.
# Usage: unshare -m sh -c "$HIDE" sh PROG ARGS...   (exit 97: could not hide)
# shellcheck disable=SC2016  # expanded by that sh, not here
HIDE='for f in /dev/nvidia* /dev/nvidia-caps/*; do
  if [ -c "$f" ]; then mount --bind /dev/null "$f" || { echo "gpu-check: cannot hide $f" >&2; exit 97; }; fi
done
exec "$@"'
HIDDEN=1

MEDIATOR_PID=""
MEDIATOR_STATUS=""
declare -a ORDER=()
declare -A NATIVE=() VGPU=()
GUEST_PID=""
LAST_LOG=""

say() { printf 'gpu-check: %s\n' "$*"; }
die() {
  printf 'gpu-check: error: %s\n' "$*"
  exit 2
}

stop_mediator() {
  [[ -n "$MEDIATOR_PID" ]] || return 0
  if kill -0 "$MEDIATOR_PID" 2>/dev/null; then
    kill -TERM "$MEDIATOR_PID" 2>/dev/null
    for _ in $(seq 100); do
      kill -0 "$MEDIATOR_PID" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$MEDIATOR_PID" 2>/dev/null; then
      say "the mediator did not stop within 10 s of SIGTERM; killing it"
      kill -KILL "$MEDIATOR_PID" 2>/dev/null
    fi
  fi
  MEDIATOR_STATUS=0
  wait "$MEDIATOR_PID" 2>/dev/null || MEDIATOR_STATUS=$?
  MEDIATOR_PID=""
}

preflight() {
  say "package $PKG; logs in $LOGDIR"
  [[ "$(id -u)" -eq 0 ]] || die "run as root (guests run under unshare -m with /dev/nvidia* hidden)"
  [[ -x "$MEDIATOR" ]] || die "$MEDIATOR is missing"
  [[ -f "$MODULE" ]] || die "$MODULE is missing"
  [[ -f "$PKG/shim/libcudart.so.13" ]] || die "$PKG/shim/libcudart.so.13 is missing"
  [[ -d "$CUDA_LIB" ]] || die "$CUDA_LIB is missing: is this the GPU machine?"

  echo "---------------------------------------------------------------- machine"
  if command -v nvidia-smi >/dev/null 2>&1; then
    nvidia-smi -L || say "nvidia-smi -L failed"
  else
    say "nvidia-smi not found"
  fi
  echo "kernel $(uname -r); $(ldd --version 2>/dev/null | head -n1)"
  [[ -f "$PKG/MANIFEST.txt" ]] && sed -n '2,4p' "$PKG/MANIFEST.txt"

  local missing
  missing="$(LD_LIBRARY_PATH="$PKG/deps:$CUDA_LIB" ldd "$MEDIATOR" "$MODULE" 2>&1 | grep 'not found' | sort -u)"
  if [[ -n "$missing" ]]; then
    say "libraries the mediator or the executor module cannot find:"
    echo "$missing"
  fi

  if ! unshare -m sh -c "$HIDE" sh true >/dev/null 2>&1; then
    HIDDEN=0
    say "WARNING: cannot hide /dev/nvidia* (unshare -m / mount --bind failed): the vgpu runs"
    say "WARNING: below run WITHOUT hiding the driver, so a pass does not prove they went through vgpu"
  fi
}

start_mediator() {
  say "starting the mediator (executor cuda), log $MLOG"
  LD_LIBRARY_PATH="$PKG/deps:$CUDA_LIB" "$MEDIATOR" \
    --config-file="$CONF" \
    --mediator.executor=cuda \
    --mediator.module-dir="$PKG/lib" \
    --mediator.socket-path="$SOCK" \
    </dev/null >"$MLOG" 2>&1 &
  MEDIATOR_PID=$!
  for _ in $(seq 600); do
    [[ -S "$SOCK" ]] && break
    kill -0 "$MEDIATOR_PID" 2>/dev/null || break
    sleep 0.1
  done
  if [[ ! -S "$SOCK" ]]; then
    stop_mediator
    say "the mediator did not open $SOCK (exit status ${MEDIATOR_STATUS:-?}); its log:"
    tail -n 60 "$MLOG"
    say "FAILED: no mediator"
    exit 1
  fi
  say "mediator pid $MEDIATOR_PID listening on $SOCK"
}

# result_of STATUS -> PASS / FAIL(rc=N) / TIMEOUT / CRASH(signal N)
result_of() {
  case "$1" in
    0) echo PASS ;;
    124) echo "TIMEOUT(${TIMEOUT_S}s)" ;;
    97) echo "FAIL(hide)" ;;
    *)
      if (($1 > 128)); then
        echo "CRASH(signal $(($1 - 128)))"
      else
        echo "FAIL(rc=$1)"
      fi
      ;;
  esac
}

add_row() {
  local n
  for n in "${ORDER[@]}"; do [[ "$n" == "$1" ]] && return 0; done
  ORDER+=("$1")
}

set_result() { # set_result NAME MODE RESULT
  if [[ "$2" == native ]]; then NATIVE[$1]="$3"; else VGPU[$1]="$3"; fi
  printf 'gpu-check: %-40s %-7s %s\n' "$1" "$2" "$3"
}

# start_guest MODE LOGFILE PROG ARGS... : starts one guest run in the
# background, sets GUEST_PID.
start_guest() {
  local mode="$1" log="$2"
  shift 2
  if [[ "$mode" == vgpu ]] && ((HIDDEN)); then
    timeout "$TIMEOUT_S" unshare -m sh -c "$HIDE" sh \
      env LD_LIBRARY_PATH="$PKG/shim:$PKG/deps" VGPU_SOCKET="$SOCK" "$@" </dev/null >"$log" 2>&1 &
  elif [[ "$mode" == vgpu ]]; then
    timeout "$TIMEOUT_S" \
      env LD_LIBRARY_PATH="$PKG/shim:$PKG/deps" VGPU_SOCKET="$SOCK" "$@" </dev/null >"$log" 2>&1 &
  else
    timeout "$TIMEOUT_S" env LD_LIBRARY_PATH="$CUDA_LIB:$PKG/deps" "$@" </dev/null >"$log" 2>&1 &
  fi
  GUEST_PID=$!
}

append_log() { # append_log TITLE FILE
  {
    echo "==================== $1"
    cat "$2"
    echo
  } >>"$GLOG"
}

next_log() { # next_log MODE -> a fresh per-run log path (unique even when called in a subshell)
  mktemp "$RUNS/run-XXXXXX-$1.log"
}

# check NAME MODE PROG ARGS... : one run, waited for.
check() {
  local name="$1" mode="$2" prog="$3"
  shift 3
  local log st rc=0
  add_row "$name"
  log="$(next_log "$mode")"
  LAST_LOG="$log"
  if [[ ! -x "$PKG/bin/$prog" ]]; then
    echo "$PKG/bin/$prog is missing" >"$log"
    st=MISSING
  else
    start_guest "$mode" "$log" "$PKG/bin/$prog" "$@"
    wait "$GUEST_PID" || rc=$?
    st="$(result_of "$rc")"
  fi
  append_log "$name [$mode]: $prog $* -> $st" "$log"
  set_result "$name" "$mode" "$st"
  [[ "$st" == PASS ]] || show_failure "$log"
}

# show_failure LOG: the lines that say why a run failed.
show_failure() {
  local pat='^FAIL|FAIL:|error:|: error|cannot|Segmentation'
  if grep -qE "$pat" "$1"; then
    grep -E "$pat" "$1" | head -n 12 | sed 's/^/    | /'
  fi
  echo "    | ... last lines:"
  tail -n 4 "$1" | sed 's/^/    | /'
}

# concurrent NAME MODE N PROG ARGS... : N copies at once, copy i with --seed i.
concurrent() {
  local name="$1" mode="$2" n="$3" prog="$4"
  shift 4
  local i rc r st=PASS
  local -a extra=() pids=() logs=()
  [[ "$mode" == vgpu ]] && extra=(--expect-vgpu)
  add_row "$name"
  if [[ ! -x "$PKG/bin/$prog" ]]; then
    set_result "$name" "$mode" MISSING
    return
  fi
  for ((i = 1; i <= n; i++)); do
    logs+=("$(next_log "$mode")")
    start_guest "$mode" "${logs[-1]}" "$PKG/bin/$prog" "$@" --seed "$i" "${extra[@]}"
    pids+=("$GUEST_PID")
  done
  for ((i = 0; i < n; i++)); do
    rc=0
    wait "${pids[$i]}" || rc=$?
    r="$(result_of "$rc")"
    append_log "$name [$mode] copy $((i + 1)): $prog $* --seed $((i + 1)) ${extra[*]} -> $r" "${logs[$i]}"
    if [[ "$r" != PASS ]]; then
      st="$r (copy $((i + 1)))"
      show_failure "${logs[$i]}"
    fi
  done
  set_result "$name" "$mode" "$st"
}

# The harness itself: NVIDIA's own runtime must NOT reach a GPU where the vgpu
# runs happen, else a vgpu pass proves nothing.
check_hidden() {
  local name="driver hidden from vgpu runs" log rc=0
  ((HIDDEN)) || return 0
  [[ -x "$PKG/bin/vgpu-demo" ]] || return 0
  add_row "$name"
  NATIVE[$name]="-"
  log="$(next_log hidden)"
  timeout "$TIMEOUT_S" unshare -m sh -c "$HIDE" sh \
    env LD_LIBRARY_PATH="$CUDA_LIB" "$PKG/bin/vgpu-demo" </dev/null >"$log" 2>&1 || rc=$?
  case "$rc" in
    0) VGPU[$name]="FAIL(NVIDIA's runtime still reached the GPU)" ;;
    97) VGPU[$name]="FAIL(hide)" ;;
    124) VGPU[$name]="TIMEOUT(${TIMEOUT_S}s)" ;;
    *) VGPU[$name]="PASS" ;;
  esac
  append_log "$name: vgpu-demo on NVIDIA's runtime with /dev/nvidia* hidden (must fail) -> rc=$rc" "$log"
  printf 'gpu-check: %-40s %-7s %s\n' "$name" hidden "${VGPU[$name]}"
}

want() { [[ -z "$ONLY" || " $ONLY " == *" $1 "* ]]; }

# The test programs of the guest libraries beyond libcudart and libcuda, with
# their arguments; each runs once through vgpu (plus --expect-vgpu) and once
# natively when the package has it.
LIB_TESTS=("vgpu-cublas-test checks" "vgpu-cublaslt-test" "vgpu-graph-test all" "vgpu-nvml-test"
           "vgpu-ggml-pattern")

run_checks() {
  echo "---------------------------------------------------------------- checks"
  check_hidden
  local sub t
  if want core; then
    for sub in device integrity async errors all; do
      check "guest-test $sub" vgpu vgpu-guest-test "$sub" --expect-vgpu
      check "guest-test $sub" native vgpu-guest-test "$sub"
    done
    concurrent "guest-test integrity x4 concurrent" vgpu 4 vgpu-guest-test integrity
    concurrent "guest-test integrity x4 concurrent" native 4 vgpu-guest-test integrity
    check "driver-test" vgpu vgpu-driver-test --expect-vgpu
    check "driver-test" native vgpu-driver-test
    check "vgpu-demo" vgpu vgpu-demo
    check "vgpu-demo" native vgpu-demo
    # Kernels: the kernel test program (its dlopen() library lies beside it in bin/).
    check "kernel-test all" vgpu vgpu-kernel-test all --expect-vgpu
    check "kernel-test all" native vgpu-kernel-test all
  fi
  if want libs; then
    local -a words
    for t in "${LIB_TESTS[@]}"; do
      read -r -a words <<<"$t"
      [[ -x "$PKG/bin/${words[0]}" ]] || continue
      check "$t" vgpu "${words[@]}" --expect-vgpu
      check "$t" native "${words[@]}"
    done
  fi
  if want bench; then
    check "vgpu-latency" vgpu vgpu-latency --iters "$ITERS"
    LAT_VGPU="$LAST_LOG"
    check "vgpu-latency" native vgpu-latency --iters "$ITERS"
    LAT_NATIVE="$LAST_LOG"
    check "vgpu-kernel-bench" vgpu vgpu-kernel-bench --iters "$KERNEL_ITERS"
    KB_VGPU="$LAST_LOG"
    check "vgpu-kernel-bench" native vgpu-kernel-bench --iters "$KERNEL_ITERS"
    KB_NATIVE="$LAST_LOG"
    if [[ -x "$PKG/bin/vgpu-bench" ]]; then  # every figure of the performance issue, with targets
      check "vgpu-bench" native vgpu-bench
      BENCH_NATIVE="$LAST_LOG"
      check "vgpu-bench" vgpu vgpu-bench
      BENCH_VGPU="$LAST_LOG"
    fi
    if [[ -x "$PKG/bin/vgpu-cublas-test" ]]; then  # SGEMM 64 call rate (target >= 0.8 x native)
      check "cublas SGEMM-64 rate" native vgpu-cublas-test bench --seconds 3 --size 64
      grep -E 'rate|/s' "$LAST_LOG" | sed 's/^/    native | /'
      check "cublas SGEMM-64 rate" vgpu vgpu-cublas-test --expect-vgpu bench --seconds 3 --size 64
      grep -E 'rate|/s' "$LAST_LOG" | sed 's/^/    vgpu   | /'
    fi
  fi
  want pytorch && pytorch_checks
}

# PyTorch (installed on the GPU machine): the same script natively and through
# vgpu, then its results compared within floating-point tolerance.
pytorch_checks() {
  local name="pytorch same results" log rc=0
  if ! python3 -c "import torch" >/dev/null 2>&1; then
    say "python3 cannot import torch here: the PyTorch checks are not run"
    add_row "pytorch"
    set_result "pytorch" vgpu "NOT RUN (no torch)"
    return
  fi
  check "pytorch run" native vgpu-pytorch-check run --out "$WORK/pytorch-native.json"
  check "pytorch run" vgpu vgpu-pytorch-check run --out "$WORK/pytorch-vgpu.json"
  add_row "$name"
  log="$(next_log compare)"
  python3 "$PKG/bin/pytorch_check.py" compare "$WORK/pytorch-native.json" "$WORK/pytorch-vgpu.json" \
    >"$log" 2>&1 || rc=$?
  append_log "$name: pytorch_check.py compare -> rc=$rc" "$log"
  NATIVE[$name]="-"
  set_result "$name" vgpu "$(result_of "$rc")"
  cat "$log"
}

# The latency and kernel figures of both runs, side by side with their ratio.
report_figures() {
  echo
  echo "================================================================ latency (us)"
  echo "native:"
  grep -E '^vgpu-latency:| median ' "$LAT_NATIVE" | sed 's/^/  /'
  echo "vgpu:"
  grep -E '^vgpu-latency:| median ' "$LAT_VGPU" | sed 's/^/  /'
  echo
  awk '
    FNR == 1 { file++ }
    $2 == "median" { m[file, $1] = $3; if (file == 1) names[++k] = $1 }
    END {
      printf "%-28s %12s %12s %8s\n", "figure (median)", "native us", "vgpu us", "ratio"
      for (i = 1; i <= k; i++) {
        n = names[i]; a = m[1, n]; b = m[2, n]
        r = (a > 0 && b != "") ? sprintf("%.2fx", b / a) : "-"
        printf "%-28s %12s %12s %8s\n", n, a, (b == "" ? "-" : b), r
      }
    }' "$LAT_NATIVE" "$LAT_VGPU"

  echo
  echo "================================================================ kernels"
  echo "native:"
  grep -E '^vgpu-kernel-bench:' "$KB_NATIVE" | sed 's/^/  /'
  echo "vgpu:"
  grep -E '^vgpu-kernel-bench:' "$KB_VGPU" | sed 's/^/  /'
  echo
  # Figures are `name value unit` lines. Targets (informational, not pass/fail):
  # launch rate vgpu/native >= 0.9, launch + sync <= 1.5x, 100 kernels' GPU time <= 1.1x.
  awk '
    FNR == 1 { file++ }
    NF == 3 && $1 ~ /^[a-z0-9_]+$/ && $2 ~ /^[0-9.]+$/ {
      v[file, $1] = $2; unit[$1] = $3
      if (!($1 in seen)) { seen[$1] = 1; names[++k] = $1 }
    }
    END {
      target["launch_rate"] = ">= 0.90"; target["launch_sync_latency"] = "<= 1.50"
      target["kernels100_gpu_time"] = "<= 1.10"
      printf "%-22s %14s %14s %-11s %8s %-9s %s\n", "figure", "native", "vgpu", "unit", "ratio", "target", ""
      for (i = 1; i <= k; i++) {
        n = names[i]; a = v[1, n]; b = v[2, n]; r = "-"; verdict = ""
        if (a > 0 && b != "") {
          q = b / a; r = sprintf("%.2fx", q)
          if (n in target) {
            split(target[n], t, " ")
            ok = (t[1] == ">=") ? (q >= t[2] + 0) : (q <= t[2] + 0)
            verdict = ok ? "meets target" : "MISSES target"
          }
        }
        printf "%-22s %14s %14s %-11s %8s %-9s %s\n", n, (a == "" ? "-" : a), (b == "" ? "-" : b), unit[n], r,
               (n in target ? target[n] : "-"), verdict
      }
      if (k == 0) print "(no kernel figures: see the vgpu-kernel-bench runs above)"
    }' "$KB_NATIVE" "$KB_VGPU"
  echo "(ratio = vgpu / native; the targets are informational, not part of PASSED/FAILED)"
}

report() {
  local n v failed=0
  echo
  echo "================================================================ summary"
  printf '%-40s %-28s %s\n' "check" "native" "vgpu"
  printf '%-40s %-28s %s\n' "-----" "------" "----"
  for n in "${ORDER[@]}"; do
    v="${VGPU[$n]:--}"
    printf '%-40s %-28s %s\n' "$n" "${NATIVE[$n]:--}" "$v"
    [[ "$v" == PASS ]] || failed=$((failed + 1))
  done
  ((HIDDEN)) || echo "(the vgpu runs were NOT isolated from the driver: see the warning above)"

  [[ -n "$LAT_VGPU" ]] && report_figures
  if [[ -n "$BENCH_VGPU" ]]; then
    echo
    echo "================================================================ vgpu-bench (vgpu / native, targets)"
    python3 "$PKG/bin/compare.py" "$BENCH_NATIVE" "$BENCH_VGPU" || true
  fi

  echo
  echo "================================================================ mediator log (excerpt)"
  echo "mediator exit status after SIGTERM: ${MEDIATOR_STATUS:-?}"
  grep -iE 'executor|session|total processed|error|fatal|warn' "$MLOG" | tail -n 60
  echo "--- last 15 lines:"
  tail -n 15 "$MLOG"

  echo
  if ((failed > 0)); then
    say "FAILED: $failed vgpu check(s) did not pass; every run's output is in $GLOG, the mediator's in $MLOG"
    return 1
  fi
  say "PASSED: every vgpu check passed (runs' output in $GLOG, the mediator's in $MLOG)"
}

main() {
  trap stop_mediator EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
  preflight
  start_mediator
  run_checks
  say "stopping the mediator (SIGTERM)"
  stop_mediator
  report
}

rm -rf "$WORK"
mkdir -p "$WORK" "$RUNS" "$LOGDIR"
: >"$GLOG"
# Everything printed also goes to summary.txt.
main 2>&1 | tee "$SUMMARY"
exit "${PIPESTATUS[0]}"
