#!/usr/bin/env bash
# The test command: installs what is missing, builds, and runs every test (ctest); then, where
# CUDA is installed, builds the CUDA backend in build-cuda/ (compile and link only: CI has no
# GPU) and runs its test binary, whose GPU tests skip with the reason.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/build.sh
(cd build && ctest --output-on-failure -j2 --timeout 900 "$@")
if [ -x /usr/local/cuda/bin/nvcc ]; then
  cmake -S . -B build-cuda -G Ninja -DCMAKE_BUILD_TYPE=Release -DLLAMATRAIN_CUDA=ON >/dev/null
  ninja -C build-cuda lt llamatrain lt_cuda_tests cuda_probe
  build-cuda/tests/lt_cuda_tests
else
  echo "skip: the CUDA build (no /usr/local/cuda/bin/nvcc)"
fi
