# Outputs that fail part-way never look complete (convert, prepare, a checkpoint save):
#  - `convert --to hf` with a bad --tokenizer writes nothing (it used to leave config.json and
#    the safetensors, which `eval` then loaded);
#  - `convert --to hf` into an earlier export replaces it whole: no stale shard survives;
#  - `convert --from hf` that fails mid-way (a tensor missing) leaves no step_00000000.tmp;
#  - a full disk during `convert --to hf`, `convert --from`, `prepare` and a training save: a
#    clear error naming the file, nothing complete-looking left (a small tmpfs in a private mount
#    namespace where the machine allows it, else a file-size limit: writes then fail with EFBIG).
# Usage: bash half_written_test.sh <llamatrain> <source-dir>
source "$2/tests/fault/fault_common.sh" "$1" "$2"
ASSETS="$SRC/assets/stories260k"
TOK="$ASSETS/tok512.model"

# expect_fail <name> <pattern> <command...>: exit 1 and one `error:` line matching.
expect_fail() {
  local name="$1" pattern="$2"
  shift 2
  "$@" > "$WORK/$name.out" 2> "$WORK/$name.err"
  local rc=$?
  check "$name: exit 1 (got $rc)" [ $rc -eq 1 ]
  check "$name: error names the problem ($pattern)" grep -q "^error: .*$pattern" "$WORK/$name.err"
}
"$LT" convert --from llama2c --input "$ASSETS/stories260K.bin" --output "$WORK/ckpt" > /dev/null 2>&1
check "import stories260K" [ -f "$WORK/ckpt/step_00000000/DONE" ]

# --- a bad tokenizer: nothing written -------------------------------------------------------
echo "not a tokenizer" > "$WORK/bad.model"
expect_fail bad_tokenizer "bad.model" "$LT" convert --to hf --input "$WORK/ckpt" --output "$WORK/hf_bad" --tokenizer "$WORK/bad.model"
check "bad tokenizer: no output directory at all" [ ! -e "$WORK/hf_bad" ]
check "bad tokenizer: no temporary directory left" [ -z "$(ls -d "$WORK"/hf_bad* 2>/dev/null)" ]

# --- an export replaced by a smaller one: no stale shards -----------------------------------
"$LT" convert --to hf --input "$WORK/ckpt" --output "$WORK/hf" --max-shard-size 100KB > /dev/null 2>&1
check "first export: several shards" [ "$(ls "$WORK/hf"/model-*.safetensors 2>/dev/null | wc -l)" -gt 1 ]
"$LT" convert --to hf --input "$WORK/ckpt" --output "$WORK/hf" --tokenizer "$TOK" > /dev/null 2>&1
check "second export exits 0" [ $? -eq 0 ]
check "second export: exactly its own files" \
  [ "$(cd "$WORK/hf" && ls | tr '\n' ' ')" = "config.json generation_config.json model.safetensors special_tokens_map.json tokenizer.model tokenizer_config.json " ]
check "second export loads" bash -c '"$0" generate --model "$1" --tokenizer "$2" --max-new-tokens 3 --temperature 0 \
  > /dev/null 2>&1' "$LT" "$WORK/hf" "$TOK"
mkdir -p "$WORK/notes" && echo keep > "$WORK/notes/README"
expect_fail foreign_dir "not a Hugging Face model directory" "$LT" convert --to hf --input "$WORK/ckpt" --output "$WORK/notes"
check "foreign_dir: left alone" [ "$(cat "$WORK/notes/README")" = keep ]

# --- convert --from hf failing mid-way ------------------------------------------------------
cp -r "$SRC/tests/fixtures/hf_tiny" "$WORK/hf_short"
perl -0pi -e 's/"num_hidden_layers": 2/"num_hidden_layers": 3/' "$WORK/hf_short/config.json"
expect_fail from_hf_missing "missing tensor 'model.layers.2" "$LT" convert --from hf --input "$WORK/hf_short" --output "$WORK/from_hf"
check "from_hf_missing: nothing left (no step_00000000.tmp, no directory)" [ ! -e "$WORK/from_hf" ]
"$LT" train $(job "$WORK/run" 2) > "$WORK/run.log" 2>&1
expect_fail into_run "holds training checkpoints" "$LT" convert --from llama2c --input "$ASSETS/stories260K.bin" --output "$WORK/run/checkpoints"

# --- a full disk ----------------------------------------------------------------------------
# full <name> <KiB> <setup> <command...>: runs <setup> (a shell snippet, unconstrained) and then
# the command with their output directory $FULL on a disk of <KiB> that fills up, then copies
# what is left there to $WORK/<name>.left/. Where mounting is not allowed, <KiB> is a file-size
# limit instead: a write past it fails with EFBIG, as one past a full disk does with ENOSPC.
if unshare -m --propagation private true 2>/dev/null; then
  full() {
    local name="$1" kib="$2" setup="$3"
    shift 3
    mkdir -p "$WORK/full_$name"
    FULL="$WORK/full_$name" LEFT="$WORK/$name.left" KIB="$kib" SETUP="$setup" unshare -m --propagation private bash -c '
      mount -t tmpfs -o size=${KIB}k tmpfs "$FULL" || exit 99
      eval "$SETUP"
      "$@"; rc=$?
      cp -a "$FULL" "$LEFT"
      exit $rc' full "$@" > "$WORK/$name.out" 2> "$WORK/$name.err"
  }
  echo "  full disk: a tmpfs in a private mount namespace (ENOSPC)"
else
  full() {
    local name="$1" kib="$2" setup="$3"
    shift 3
    mkdir -p "$WORK/full_$name"
    ( export FULL="$WORK/full_$name"; eval "$setup"; trap '' XFSZ; ulimit -f "$kib"; exec "$@" ) \
      > "$WORK/$name.out" 2> "$WORK/$name.err"
    local rc=$?
    cp -a "$WORK/full_$name" "$WORK/$name.left"
    return $rc
  }
  echo "  full disk: no mount namespace here; a file-size limit instead (EFBIG)"
fi
full_case() {  # full_case <name> <KiB> <setup> <command...>
  local name="$1" kib="$2" setup="$3"
  shift 3
  full "$name" "$kib" "$setup" "$@"
  local rc=$?
  check "full disk, $name: exit 1 (got $rc)" [ $rc -eq 1 ]
  check "full disk, $name: error names the reason" grep -q "^error: .*\(No space left on device\|File too large\)" "$WORK/$name.err"
}
nothing_left() { [ -z "$(ls -A "$WORK/$1.left")" ]; }
# The stories260K export is ~1 MB: 300 KiB fills up in the middle of the safetensors.
full_case convert_to_hf 300 : bash -c '"$0" convert --to hf --input "$1" --output "$FULL/hf"' "$LT" "$WORK/ckpt"
check "full disk, convert_to_hf: nothing left" nothing_left convert_to_hf
full_case convert_from 300 : bash -c '"$0" convert --from llama2c --input "$1" --output "$FULL/ckpt"' "$LT" "$ASSETS/stories260K.bin"
check "full disk, convert_from: nothing left" nothing_left convert_from
for l in ca es en; do
  awk -v RS= 'NR <= 150 { print; print "" }' "$SRC/assets/corpus/gimp_help/gimp_help_$l.txt" > "$WORK/corpus_$l.txt"
done
full_case prepare 40 : bash -c '"$0" prepare "$1"/corpus_*.txt -o "$FULL/data" --tokenizer "$2" --block-size 64 --no-progress' \
  "$LT" "$WORK" "$TOK"
check "full disk, prepare: nothing left" nothing_left prepare
# A save: a run with its step-2 checkpoint (model 1 MB + optimizer 3 MB) is put on the disk, which
# then fills up while step 4 is saved (tmpfs of 6000 KiB; or a 2000 KiB file-size limit: the
# optimizer shard); step 2 stays the newest complete checkpoint.
"$LT" train $(job "$WORK/save_base" 2 checkpoint.every=2) > "$WORK/save_base.log" 2>&1
check "full disk, save: a run with a step-2 checkpoint" [ -f "$WORK/save_base/checkpoints/step_00000002/DONE" ]
if unshare -m --propagation private true 2>/dev/null; then save_kib=6000; else save_kib=2000; fi
full_case save $save_kib "cp -a '$WORK/save_base' \"\$FULL/run\"" \
  bash -c '"$0" train $1 run.dir="$FULL/run" checkpoint.every=2 checkpoint.keep=3' "$LT" \
  "$(job unused 4 | sed 's/run.dir=[^ ]*//')"
check "full disk, save: the error names the checkpoint being written" grep -q "^error: .*step_00000004" "$WORK/save.err"
check "full disk, save: step 2 is complete" [ -f "$WORK/save.left/run/checkpoints/step_00000002/DONE" ]
check "full disk, save: every DONE directory verifies" every_done_verifies "$WORK/save.left/run/checkpoints"
check "full disk, save: latest is step 2" [ "$(cat "$WORK/save.left/run/checkpoints/latest")" = step_00000002 ]
check "full disk, save: no step 4" [ ! -e "$WORK/save.left/run/checkpoints/step_00000004" ]
exit $fail
