# The libFuzzer targets (fuzz/, with AddressSanitizer + UBSan), each run for a bounded time
# (LT_FUZZ_SECONDS, default 20) from its committed corpus: a crash, a leak, undefined behaviour or
# an exception other than lt::Error fails the test, and the input that did it is named (keep it:
# add it to fuzz/corpus/<target>/ with the fix). Built with clang in <build>/fuzz-build.
# Usage: bash fuzz_bounded_test.sh <llamatrain> <source-dir>
set -u
SRC="$2"
SECONDS_EACH=${LT_FUZZ_SECONDS:-20}
BUILD="$(pwd)/fuzz-build"
WORK="$(pwd)/test_scratch/fuzz_bounded_test"
rm -rf "$WORK"
mkdir -p "$WORK"
for t in clang clang++; do
  command -v $t >/dev/null || { echo "FAIL: $t not found (scripts/setup.sh installs clang libclang-rt-14-dev libomp-dev)"; exit 1; }
done
if [ ! -f "$BUILD/build.ninja" ]; then
  CC=clang CXX=clang++ cmake -S "$SRC" -B "$BUILD" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLLAMATRAIN_FUZZ=ON \
    -DLLAMATRAIN_TESTS=OFF -DLLAMATRAIN_BENCH=OFF -DLLAMATRAIN_NATIVE=OFF > "$WORK/configure.log" 2>&1 ||
    { echo "FAIL: configuring the fuzz build:"; tail -20 "$WORK/configure.log"; exit 1; }
fi
targets="fuzz_safetensors fuzz_ckpt_meta fuzz_tokenizer_json fuzz_model_config fuzz_dataset_meta"
ninja -C "$BUILD" $targets > "$WORK/build.log" 2>&1 || { echo "FAIL: building the fuzz targets:"; tail -30 "$WORK/build.log"; exit 1; }
fail=0
for t in $targets; do
  corpus="$SRC/fuzz/corpus/${t#fuzz_}"
  [ -d "$corpus" ] && [ -n "$(ls -A "$corpus")" ] || { echo "FAIL: $t has no committed corpus ($corpus)"; fail=1; continue; }
  # A scratch copy: new inputs the run finds are not written into the source tree.
  cp -r "$corpus" "$WORK/$t.corpus"
  mkdir -p "$WORK/$t.crashes"
  (cd "$WORK" && "$BUILD/fuzz/$t" -max_total_time="$SECONDS_EACH" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
     -artifact_prefix="$WORK/$t.crashes/" -print_final_stats=1 "$WORK/$t.corpus") > "$WORK/$t.log" 2>&1
  rc=$?
  runs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$WORK/$t.log")
  if [ $rc -eq 0 ]; then
    echo "ok: $t: ${runs:-?} inputs in ${SECONDS_EACH} s, no finding"
  else
    echo "FAIL: $t exited $rc; input: $(ls "$WORK/$t.crashes" | head -1)"
    grep -m1 -A12 "ERROR: \|runtime error\|terminate called\|deadly signal" "$WORK/$t.log" | sed 's/^/    /'
    fail=1
  fi
done
exit $fail
