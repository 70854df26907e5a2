#!/usr/bin/env bash
# Configures and builds llamatrain into build/ (Release, Ninja).
# Usage: scripts/build.sh [ninja targets...]   (default: everything; e.g. `llamatrain` for the binary only)
# CMake options can be passed through LLAMATRAIN_CMAKE_ARGS, e.g. "-DLLAMATRAIN_NATIVE=OFF".
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release ${LLAMATRAIN_CMAKE_ARGS:-} >/dev/null
ninja -C build "$@"
