# `llamatrain plan`: the seed's 70B layout in human and JSON form, and a clash that names the
# numbers and suggests values. Usage: bash plan_cli_test.sh <llamatrain> <source-dir>
set -u
BIN=$1
fail=0
check() {  # check <description> <pattern> <text>
  if grep -qE -- "$2" <<<"$3"; then echo "ok: $1"; else echo "FAIL: $1: /$2/ not in:"; echo "$3"; fail=1; fi
}
out=$("$BIN" plan --model llama2-70b --nodes 32 --procs-per-node 32 --tp 8 --pp 8 --gbs 512 --seq 4096 \
      --zero1 --recompute full --device trn1 2>&1) || { echo "FAIL: plan exited $?"; echo "$out"; exit 1; }
check "layout line" "tp 8 x pp 8 x dp 16, ZeRO-1" "$out"
check "micro-batches" "per replica 32 = 32 micro-batches of 1" "$out"
check "bubble" "= 7/39 = 17.9%" "$out"
check "peak marked" "<- peak" "$out"
json=$("$BIN" plan --model llama2-70b --nodes 32 --procs-per-node 32 --tp 8 --pp 8 --gbs 512 --seq 4096 --json 2>&1)
check "json dp" '"dp": 16' "$json"
check "json micro_batches" '"micro_batches": 32' "$json"
check "json stages" '"activations_recompute_bytes"' "$json"
check "json step time" '"step_seconds": [0-9]' "$json"
bad=$("$BIN" plan --model llama2-70b --nodes 32 --procs-per-node 32 --tp 8 --pp 8 --gbs 500 --seq 4096 2>&1)
rc=$?
[ $rc -eq 1 ] && echo "ok: clash exits 1" || { echo "FAIL: clash exit $rc"; fail=1; }
check "clash names numbers" "global batch size 500 is not divisible by dp = 16" "$bad"
check "clash suggests" "496 or 512" "$bad"
bad=$("$BIN" plan --model llama2-70b --procs-per-node 24 --tp 3 --gbs 8 --seq 4096 2>&1)
check "tp must divide heads" "tp = 3 must divide num_attention_heads = 64" "$bad"
exit $fail
