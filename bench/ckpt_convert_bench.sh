#!/usr/bin/env bash
# HF -> llamatrain checkpoint (tp2/pp2) -> HF conversion of a synthetic Llama-2-7B-size model
# (bf16 random weights, ~13.5 GB): time and peak RSS of each direction, plus the checkpoint
# save/load benchmark. Needs ~45 GB free under WORK; everything it writes is deleted at the end.
#   bash bench/ckpt_convert_bench.sh <build-dir> <work-dir>
set -euo pipefail
BUILD=$1
WORK=$2/ckpt_convert_bench
mkdir -p "$WORK"
trap 'rm -rf "$WORK"' EXIT
df -h "$2"
avail_kb=$(df -Pk "$2" | awk 'NR==2 {print $4}')
if [ "$avail_kb" -lt $((45 * 1024 * 1024)) ]; then echo "need 45 GB free under $2"; exit 1; fi
echo "== machine: $(nproc) cores, $(free -g | awk '/Mem:/ {print $2}') GB RAM, $(date -u +%F)"

echo "== checkpoint save/load (fp32 weights + AdamW state, 5 layers of 1024, vocab 32000)"
"$BUILD/bench/ckpt_bench" save-load --dir "$WORK/saveload" --layers 5

echo "== write synthetic llama2-7b HF directory (bf16)"
/usr/bin/time -f "write-hf: %e s, peak RSS %M KB" "$BUILD/bench/ckpt_bench" write-hf --dir "$WORK/hf" --preset llama2-7b --dtype bf16
du -sh "$WORK/hf"
sync

echo "== convert --from hf --tp 2 --pp 2"
/usr/bin/time -f "hf->ckpt: %e s wall, %U s user, %S s sys, peak RSS %M KB" \
  "$BUILD/llamatrain" convert --from hf --input "$WORK/hf" --output "$WORK/ckpt" --tp 2 --pp 2 --json
rm -rf "$WORK/hf"  # keep the disk footprint to two copies
sync

echo "== convert --to hf"
/usr/bin/time -f "ckpt->hf: %e s wall, %U s user, %S s sys, peak RSS %M KB" \
  "$BUILD/llamatrain" convert --to hf --input "$WORK/ckpt" --output "$WORK/hf_back" --json
ls -la "$WORK/hf_back"
