#!/usr/bin/env bash
# PyTorch baseline for the stories15M training shape, with and without tcmalloc.
# Usage: bench/run_pytorch.sh [extra args for bench/pytorch_train.py, e.g. --steps 2 --dtype bf16]
# Prints one JSON line per run. Heavy (~GBs of RSS, minutes): run it once, not in a loop.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
py=/usr/bin/python3
tcmalloc=/usr/lib/x86_64-linux-gnu/libtcmalloc.so.4   # Debian libgoogle-perftools4
shape=(--dim 288 --layers 6 --heads 6 --kv-heads 6 --hidden 768 --vocab 32000 --seq 256 --batch 32
       --tied --threads 2 --steps 10 --warmup 2)   # stories15M ties lm_head to the embedding
"$py" "$here/pytorch_train.py" "${shape[@]}" "$@"
if [[ -e "$tcmalloc" ]]; then
  LD_PRELOAD="$tcmalloc" "$py" "$here/pytorch_train.py" "${shape[@]}" "$@"
else
  echo "run_pytorch.sh: $tcmalloc not found (apt-get install libgoogle-perftools4); skipped tcmalloc run" >&2
fi
