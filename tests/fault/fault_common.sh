# Sourced by tests/fault/*_test.sh: the fault-injection suite at stories260K size. A tiny job
# (stories260k, 32-token sequences, 4 per step) on random tokens, helpers to run it alone or as
# 4 ranks, and the checks every case makes after a fault. Usage: source it with "$1" "$2".
source "$2/tests/launch/launch_common.sh" "$1" "$2"  # LT, SRC, WORK with tokens.bin, launch, check, ...
unset LT_FAULT_SAVE_DELAY_S LT_FAULT_PRUNE_DELAY_S LT_FAULT_NAN_AT_STEP LT_FAULT_EXIT_AT_STEP LT_FAULT_SEED

# job <run-dir> <steps> [more key=value]: the trainer settings of every case (one process, or
# with parallel.tp=2 under `launch`'s 4 ranks tp2 x dp2).
job() {
  local dir="$1" steps="$2"
  shift 2
  echo model=stories260k data.path="$WORK/tokens.bin" run.dir="$dir" train.steps="$steps" \
       train.global_batch_size=4 train.micro_batch_size=2 train.seq_len=32 train.log_every=100 \
       optim.warmup_steps=1 optim.decay_steps=20 "$@"
}
# train1 <run-dir> <steps> [key=value...]: one process; output in <run-dir>.log.
train1() {
  local dir="$1"
  "$LT" train $(job "$@") > "$dir.log" 2>&1
}
# verify_step <step-dir>: checked independently of llamatrain's reader: meta.json parses (perl
# JSON::PP) and every file it lists has its size and xxhash64 (the xxhsum tool).
verify_step() {
  local d="$1"
  command -v xxhsum >/dev/null || { echo "  xxhsum not found (scripts/setup.sh installs xxhash)"; return 1; }
  perl -MJSON::PP -e '
    my ($d) = @ARGV;
    open(my $f, "<", "$d/meta.json") or die "no meta.json\n";
    local $/; my $m = decode_json(<$f>);
    my $files = $m->{files} or die "meta.json lists no files\n";
    die "meta.json lists no files\n" unless %$files;
    for my $rel (sort keys %$files) {
      my $p = "$d/$rel";
      -f $p or die "$rel missing\n";
      (-s $p) == $files->{$rel}{size} or die "$rel has ", (-s $p), " bytes, meta.json says $files->{$rel}{size}\n";
      my $h = `xxhsum -H1 "$p" 2>/dev/null`; $h =~ s/\s.*//s;
      $h eq $files->{$rel}{xxh64} or die "$rel xxh64 $h, meta.json says $files->{$rel}{xxh64}\n";
    }' "$d" || { echo "  $d does not verify"; return 1; }
}
# every_done_verifies <ckpt-root>: every step directory with DONE is complete (verify_step).
every_done_verifies() {
  local d ok=0
  for d in "$1"/step_*; do
    [ -f "$d/DONE" ] || continue
    verify_step "$d" || ok=1
  done
  return $ok
}
# latest_complete <ckpt-root>: `latest`, if present, names a step directory with DONE that verifies.
latest_complete() {
  [ -f "$1/latest" ] || return 0
  local d="$1/$(cat "$1/latest")"
  [ -f "$d/DONE" ] && verify_step "$d"
}
# tree_digest <dir>: names, sizes and contents of everything below <dir> (to show nothing changed).
tree_digest() {
  (cd "$1" && find . -printf '%p %s %y\n' | sort && find . -type f -print0 | sort -z | xargs -0 -r md5sum)
}
# flip_byte <file> <offset>: corrupts one byte in place.
flip_byte() {
  perl -e 'open(my $f, "+<", $ARGV[0]) or die; binmode $f; seek($f, $ARGV[1], 0); read($f, my $c, 1);
           seek($f, $ARGV[1], 0); print $f chr(ord($c) ^ 0x10); close $f' "$1" "$2"
}
