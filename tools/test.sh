#!/usr/bin/env bash
# Installs what is missing, builds vgpu (Release, tests on) and runs every test
# with ctest: unit tests and the integration tests (real mediator with the
# reference executor + real shim, in separate processes), then the VM tests
# (label vm: QEMU TCG, shown with -V so their console and logs are in the CI log
# even when they pass). No GPU needed. `.ci/run` calls this.
#
#   tools/test.sh [extra ctest arguments]     e.g. tools/test.sh -R ring
# Environment:
#   VGPU_BUILD_DIR  build folder (default: build)
#   VGPU_JOBS       parallel build jobs (default: 2)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

BUILD_DIR="${VGPU_BUILD_DIR:-build}"
start=$(date +%s)

"$ROOT/tools/build.sh" -DVGPU_BUILD_TESTS=ON

echo "test: running ctest in $BUILD_DIR"
status=0
split=""
# -j1: integration tests start mediators and several guest processes each.
# --no-tests=error: a test run that finds no tests is a failure, not a pass.
# --timeout: a hung test fails after 10 minutes instead of hanging CI (tests
# that set their own TIMEOUT property keep it).
CTEST=(ctest --test-dir "$BUILD_DIR" -j1 --no-tests=error --timeout 600)
# The VM tests (label vm) run in a second ctest with -V, so that their output
# (the VM's console, the mediator's log) is in the CI log when they pass too;
# each test still runs once.
count() { { "${CTEST[@]}" -N "$@" 2>/dev/null || true; } | awk '/^Total Tests:/ {print $3}'; }
vm_tests="$(count -L vm "$@")"
other_tests="$(count -LE vm "$@")"
if [[ "${vm_tests:-0}" == 0 ]]; then
  "${CTEST[@]}" --output-on-failure "$@" || status=$?
else
  if [[ "${other_tests:-0}" != 0 ]]; then
    "${CTEST[@]}" --output-on-failure -LE vm "$@" || status=$?
    # The VM run overwrites LastTest.log: keep this run's beside it.
    cp -f "$BUILD_DIR/Testing/Temporary/LastTest.log" "$BUILD_DIR/Testing/Temporary/LastTest-non-vm.log" 2>/dev/null &&
      split=1
  fi
  echo "test: running the VM tests (label vm) with their output"
  "${CTEST[@]}" -V -L vm "$@" || status=$?
fi

elapsed=$(($(date +%s) - start))
if ((status == 0)); then
  echo "test: PASSED: all tests passed (build + tests took ${elapsed}s)"
else
  echo "test: FAILED: ctest exited with status $status (build + tests took ${elapsed}s);" \
    "the failing tests' output is above, the full log in $BUILD_DIR/Testing/Temporary/LastTest.log${split:+ (the tests other than the VM tests: LastTest-non-vm.log)}"
fi
exit "$status"
