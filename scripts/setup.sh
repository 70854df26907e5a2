#!/usr/bin/env bash
# Installs the Debian packages llamatrain needs to build and test (idempotent).
# Usage: scripts/setup.sh [--with-python]   (--with-python adds python3-torch etc.,
#        needed only to regenerate reference fixtures and run comparison benchmarks)
set -euo pipefail
pkgs=(build-essential cmake ninja-build pkg-config
      libdnnl-dev nlohmann-json3-dev libyaml-cpp-dev libcli11-dev
      libspdlog-dev libfmt-dev libopenmpi-dev openmpi-bin libprotobuf-dev protobuf-compiler
      libxxhash-dev libgtest-dev libgmock-dev libbenchmark-dev libcurl4-openssl-dev libssl-dev libzstd-dev zlib1g-dev
      libpcre2-dev
      xxhash clang libclang-rt-14-dev libomp-dev
      slurm-wlm munge   # tests/launch/slurm_test.sh: a one-node Slurm cluster
      )
# xxhash: xxhsum, the fault-injection tests' independent checkpoint checker; clang, its runtime
# and libomp: the libFuzzer targets (tests/fuzz/fuzz_bounded_test.sh).
# Node.js + npm only serve the S3 test server; install them only when absent.
command -v npm >/dev/null 2>&1 || pkgs+=(nodejs npm)
if [ "${1:-}" = "--with-python" ]; then
  # libopenblas0-pthread: PyTorch's fp32 GEMMs go through the libblas alternative; without it
  # they run on the reference BLAS (~3 GFLOP/s).
  pkgs+=(python3-torch python3-sentencepiece python3-numpy python3-protobuf libgoogle-perftools4 libopenblas0-pthread)
fi
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
