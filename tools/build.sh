#!/usr/bin/env bash
# Installs what is missing (tools/install-deps.sh), configures and builds vgpu
# (Release). Extra arguments go to the cmake configure step, e.g.
#   tools/build.sh -DVGPU_BUILD_TESTS=OFF
# Environment:
#   VGPU_BUILD_DIR  build folder (default: build, relative to the repo root)
#   VGPU_JOBS       parallel build jobs (default: 2)
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

BUILD_DIR="${VGPU_BUILD_DIR:-build}"
JOBS="${VGPU_JOBS:-2}"

"$ROOT/tools/install-deps.sh"

echo "build: configuring $BUILD_DIR (Release)"
cmake -S . -B "$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release "$@"
echo "build: building with -j$JOBS"
cmake --build "$BUILD_DIR" -j"$JOBS"
echo "build: done: $BUILD_DIR/bin (mediator, programs), $BUILD_DIR/shim/lib (guest libraries)"
