#!/usr/bin/env bash
# Installs what is missing, builds vgpu (Release, tests on) and runs every test
# with ctest: unit tests and the integration tests (real mediator with the
# reference executor + real shim, in separate processes). No GPU needed.
# `.ci/run` calls this.
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
# -j1: integration tests start mediators and several guest processes each.
# --no-tests=error: a test run that finds no tests is a failure, not a pass.
# --timeout: a hung test fails after 10 minutes instead of hanging CI (tests
# that set their own TIMEOUT property keep it).
ctest --test-dir "$BUILD_DIR" --output-on-failure -j1 --no-tests=error --timeout 600 "$@" ||
  status=$?

elapsed=$(($(date +%s) - start))
if ((status == 0)); then
  echo "test: PASSED: all tests passed (build + tests took ${elapsed}s)"
else
  echo "test: FAILED: ctest exited with status $status (build + tests took ${elapsed}s);" \
    "the failing tests' output is above, the full log in $BUILD_DIR/Testing/Temporary/LastTest.log"
fi
exit "$status"
