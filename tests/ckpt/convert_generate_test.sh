#!/usr/bin/env bash
# CLI: llama2.c -> checkpoint (tp2/pp2) -> HF -> generate, greedy output == llama2.c's; bad
# inputs give one "error:" line and exit 1. Called as: bash this.sh <llamatrain> <source-dir>
set -euo pipefail
BIN=$1
SRC=$2
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
ASSETS=$SRC/assets/stories260k

"$BIN" convert --from llama2c --input "$ASSETS/stories260K.bin" --output "$WORK/ckpt" --tp 2 --pp 2 --json > "$WORK/c1.json"
grep -q '"tp": 2' "$WORK/c1.json"
test -f "$WORK/ckpt/step_00000000/DONE"
test "$(cat "$WORK/ckpt/latest")" = step_00000000
"$BIN" convert --to hf --input "$WORK/ckpt" --output "$WORK/hf" --tokenizer "$ASSETS/tok512.model" --json > "$WORK/c2.json"
test -f "$WORK/hf/config.json" && test -f "$WORK/hf/model.safetensors" && test -f "$WORK/hf/tokenizer.model" && test -f "$WORK/hf/tokenizer_config.json"

# Greedy from BOS through every model format: the text llama2.c prints.
for model in "$ASSETS/stories260K.bin" "$WORK/ckpt" "$WORK/hf"; do
  # Plain output is the text and a newline, exactly as the expected file was staged.
  "$BIN" generate --model "$model" --tokenizer "$ASSETS/tok512.model" --temperature 0 --max-new-tokens 256 \
    > "$WORK/g.txt" 2> "$WORK/g.err"
  cmp "$WORK/g.txt" "$ASSETS/expected_greedy_t0.txt"
  "$BIN" generate --model "$model" --tokenizer "$ASSETS/tok512.model" --temperature 0 --max-new-tokens 256 \
    --json > "$WORK/g.json"
  grep -q '"generated_ids": \[' "$WORK/g.json"
  grep -q '"stop_reason": "\(bos\|max_new_tokens\)"' "$WORK/g.json"
done

# Back to llama2.c: the weights come back byte for byte (the file tail holds RoPE tables).
"$BIN" convert --to llama2c --input "$WORK/hf" --output "$WORK/back.bin"
cmp -n 1000000 "$WORK/back.bin" "$ASSETS/stories260K.bin"

# Sampling is reproducible for a seed.
a=$("$BIN" generate --model "$WORK/hf" --tokenizer "$ASSETS/tok512.model" --prompt "Once upon a time" --seed 5 --max-new-tokens 30 2>/dev/null)
b=$("$BIN" generate --model "$WORK/hf" --tokenizer "$ASSETS/tok512.model" --prompt "Once upon a time" --seed 5 --max-new-tokens 30 2>/dev/null)
test "$a" = "$b"
case "$a" in "Once upon a time"*) ;; *) echo "prompt not echoed: $a"; exit 1 ;; esac

# Bad input: one clear error line, exit status 1.
expect_error() {
  local pattern=$1; shift
  if "$@" > "$WORK/out" 2> "$WORK/err"; then echo "expected failure: $*"; exit 1; fi
  grep -q "^error: .*$pattern" "$WORK/err" || { echo "unexpected error text for $*:"; cat "$WORK/err"; exit 1; }
}
expect_error "does not divide\|must divide" "$BIN" convert --from llama2c --input "$ASSETS/stories260K.bin" --output "$WORK/x" --tp 3
expect_error "no config.json" "$BIN" convert --from hf --input "$WORK" --output "$WORK/x"
head -c 1000 "$ASSETS/stories260K.bin" > "$WORK/trunc.bin"
expect_error "truncated" "$BIN" convert --from llama2c --input "$WORK/trunc.bin" --output "$WORK/x"
expect_error "does not exist" "$BIN" generate --model "$WORK/not_here" --tokenizer "$ASSETS/tok512.model"
rm "$WORK/ckpt/step_00000000/DONE"
expect_error "no complete, valid checkpoint" "$BIN" generate --model "$WORK/ckpt" --tokenizer "$ASSETS/tok512.model"
echo OK
