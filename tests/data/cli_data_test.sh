#!/usr/bin/env bash
# CLI checks for `tokenize`, `prepare` and `data inspect`: round trips, JSON output, error exits,
# and that an interrupted prepare leaves nothing that looks like a dataset.
# Usage: bash cli_data_test.sh <path-to-llamatrain> <source-dir>
set -u
BIN=$1
SRC=$2
TOK=$SRC/assets/llama2/tokenizer.model
TOKJ=$SRC/assets/llama2/tokenizer.json
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
fails=0
check() { if eval "$2"; then echo "ok   $1"; else echo "FAIL $1"; fails=$((fails + 1)); fi; }

# tokenize: encode -> decode round trip through both tokenizer files; known ids.
ids=$(printf 'Hello world, caf\xc3\xa9\n' | "$BIN" tokenize --tokenizer "$TOK")
check "encode ids" '[ "$ids" = "15043 3186 29892 274 28059" ]'
check "json tokenizer same ids" '[ "$(printf "Hello world, caf\xc3\xa9" | "$BIN" tokenize --tokenizer "$TOKJ")" = "$ids" ]'
check "decode" '[ "$(echo "$ids" | "$BIN" tokenize --tokenizer "$TOKJ" --decode)" = "Hello world, café" ]'
check "json + bos" 'printf "hi" | "$BIN" tokenize --tokenizer "$TOK" --bos --json | grep -q "\"<s>\""'
echo "not a tokenizer" > "$W/fake.model"
out=$(echo hi | "$BIN" tokenize --tokenizer "$W/fake.model" 2>&1); rc=$?
check "bad tokenizer exits 1" '[ $rc -eq 1 ] && echo "$out" | grep -q "error: .*fake.model"'
out=$(echo "12 abc" | "$BIN" tokenize --tokenizer "$TOK" --decode 2>&1); rc=$?
check "bad id exits 1" '[ $rc -eq 1 ] && echo "$out" | grep -q "not a token id"'

# prepare: gzip + zstd JSONL and wikicorpus; inspect.
mkdir -p "$W/in"
for i in 1 2 3 4 5 6; do echo "{\"text\": \"Document $i: el ni\u00f1o comi\u00f3 una manzana roja en el jard\u00edn.\"}"; done > "$W/in/a.jsonl"
gzip -k "$W/in/a.jsonl" && mv "$W/in/a.jsonl.gz" "$W/in/b.jsonl.gz"
if command -v zstd > /dev/null; then zstd -q "$W/in/a.jsonl" -o "$W/in/c.jsonl.zst"; fi
"$BIN" prepare "$W/in" "$SRC/assets/corpus/wikicorpus_sample" -o "$W/ds" --tokenizer "$TOK" --block-size 64 \
  --validation-fraction 0.2 --no-progress > "$W/prep.txt" 2>&1; rc=$?
check "prepare exits 0" '[ $rc -eq 0 ] && [ -f "$W/ds/meta.json" ]'
check "inspect json" '"$BIN" data inspect "$W/ds" --json > "$W/inspect.json" && grep -q "\"bos_count\"" "$W/inspect.json"'
check "inspect text shows a document start" '"$BIN" data inspect "$W/ds" --block 0 | grep -q "<s>"'
out=$("$BIN" data inspect "$W/ds" --block 999999 2>&1); rc=$?
check "inspect bad block exits 1" '[ $rc -eq 1 ] && echo "$out" | grep -q "outside"'
out=$("$BIN" data inspect "$W/in" 2>&1); rc=$?
check "inspect non-dataset exits 1" '[ $rc -eq 1 ] && echo "$out" | grep -q "meta.json"'
check "prepare --help documents the policy" '"$BIN" prepare --help | grep -q "final partial block is dropped"'

# Bad inputs: exit 1 with a message; nothing left behind.
out=$("$BIN" prepare "$W/nope.txt" -o "$W/ds2" --tokenizer "$TOK" 2>&1); rc=$?
check "missing input exits 1" '[ $rc -eq 1 ] && echo "$out" | grep -q "nope.txt" && [ ! -e "$W/ds2" ]'
printf '{"text": "ok"}\nnot json\n' > "$W/bad.jsonl"
out=$("$BIN" prepare "$W/bad.jsonl" -o "$W/ds3" --tokenizer "$TOK" --block-size 2 2>&1); rc=$?
check "bad jsonl exits 1 with line" '[ $rc -eq 1 ] && echo "$out" | grep -q "bad.jsonl:2" && [ -z "$(ls -d "$W"/ds3* 2>/dev/null)" ]'

# Interrupt: SIGINT during a longer prepare leaves no dataset and no temporary directory.
mkdir -p "$W/big"
for i in $(seq 1 12); do for l in ca es en; do ln -s "$SRC/assets/corpus/gimp_help/gimp_help_$l.txt" "$W/big/$i-$l.txt"; done; done
"$BIN" prepare "$W/big" -o "$W/ds4" --tokenizer "$TOK" --threads 1 --no-progress > /dev/null 2>&1 &
pid=$!
sleep 1
kill -INT $pid
wait $pid; rc=$?
if [ $rc -eq 0 ]; then
  echo "skip interrupt check (prepare finished within 1 s)"
else
  check "interrupted prepare leaves nothing" '[ -z "$(ls -d "$W"/ds4* 2>/dev/null)" ]'
fi

[ $fails -eq 0 ] && echo "all data CLI checks passed" || { echo "$fails data CLI check(s) failed"; exit 1; }
