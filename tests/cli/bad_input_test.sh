# Table-driven bad input, generated from the declarations, so that a new option, config key or
# environment variable is covered the day it is declared:
#  - every numeric, duration and choice option of every subcommand (`llamatrain --list-options`:
#    kind and allowed range as declared with the option, src/cli/options.h);
#  - every config key (`llamatrain train --help-config`: type and allowed range when the listing
#    has those columns, else the type is inferred from the default);
#  - every environment variable (`llamatrain --list-env`, src/core/env.h).
# Each bad value must give exit 1, one `error:` line naming the option / key / variable, and write
# nothing. Then hand-written cases where the message used to name the wrong thing.
# Usage: bash bad_input_test.sh <llamatrain> <source-dir>
set -u
LT="$(cd "$(dirname "$1")" && pwd)/$(basename "$1")"  # absolute: cases run in their own directory
SRC="$(cd "$2" && pwd)"
WORK="$(pwd)/test_scratch/bad_input_test"
rm -rf "$WORK"
mkdir -p "$WORK"
unset $(env | sed -n 's/^\(LT_[A-Z_]*\)=.*/\1/p') OMPI_COMM_WORLD_SIZE OMPI_COMM_WORLD_RANK 2>/dev/null
fail=0 cases=0

# bad <name> <what must be named> <env-assignments or -> <command args...>: run in an empty
# directory, expect exit 1, an error line naming <what>, and the directory still empty.
bad() {
  local name="$1" what="$2" envs="$3"
  shift 3
  local dir="$WORK/case"
  rm -rf "$dir"; mkdir -p "$dir"
  local rc
  if [ "$envs" = - ]; then
    (cd "$dir" && "$LT" "$@") > "$WORK/out" 2> "$WORK/err"; rc=$?
  else
    (cd "$dir" && env "$envs" "$LT" "$@") > "$WORK/out" 2> "$WORK/err"; rc=$?
  fi
  cases=$((cases + 1))
  local why=""
  [ $rc -eq 1 ] || why="exit $rc"
  # (libgomp complains about a bad OMP_NUM_THREADS itself, before llamatrain starts)
  grep -v '^libgomp: \|^$' "$WORK/err" > "$WORK/err.ours"
  mv "$WORK/err.ours" "$WORK/err"
  head -1 "$WORK/err" | grep -q "^error: " || why="$why; first line is not 'error: ...'"
  grep -qF -- "$what" "$WORK/err" || why="$why; does not name $what"
  [ -z "$(ls -A "$dir")" ] || why="$why; wrote $(ls -A "$dir" | tr '\n' ' ')"
  [ "$(grep -c . "$WORK/err")" -le 3 ] || why="$why; more than one short message"
  if [ -n "$why" ]; then
    echo "FAIL: $name:${why#;}"; sed 's/^/    /' "$WORK/err" | head -5; fail=1
  fi
}
# Values outside [lo, hi] and the right kind of garbage, from a declared range "[lo, hi]".
range_values() {  # range_values <int|number|duration|size>[-list] <allowed>
  local kind="$1" allowed="$2"
  perl -e '
    my ($kind, $r) = @ARGV;
    my $list = $kind =~ s/-list$//;
    my @v = $kind eq "duration" ? ("soon", "-5m", "5x") : $kind eq "size" ? ("abc", "5XB", "-1") : ("abc", "");
    push @v, "1,5" unless $list;
    push @v, "1.5" if $kind eq "int";
    push @v, "nan", "inf" if $kind eq "number";
    if ($r =~ /^([\[(])\s*([-+.\deE]+),\s*([-+.\deE]+)([\])])$/) {
      my ($lo_open, $lo, $hi, $hi_open) = ($1 eq "(", $2, $3, $4 eq ")");
      my $below = $lo_open ? $lo : ($kind eq "number" ? $lo - (abs($lo) > 1 ? abs($lo) : 1) * 0.5 : $lo - 1);
      my $above = $hi_open ? $hi : ($kind eq "number" ? $hi * 2 + 1 : $hi + 1);
      push @v, $below if $lo > -9e18 && !($kind eq "duration" && $below <= 0 && $lo == 0);
      push @v, $above if $hi < 9e18;
      @v = map { $kind eq "duration" && /^-?[\d.]+$/ ? "${_}s" : $_ } @v;
      @v = map { $kind eq "size" && /^-?[\d.]+$/ ? sprintf("%.0f", $_) : $_ } @v;
    }
    print join("\n", map { $_ eq "" ? "<empty>" : $_ } @v), "\n";' "$kind" "$allowed"
}

# --- every subcommand option ------------------------------------------------------------------
"$LT" --list-options > "$WORK/options.tsv" || { echo "FAIL: --list-options"; exit 1; }
[ "$(wc -l < "$WORK/options.tsv")" -gt 40 ] || { echo "FAIL: --list-options lists too few options"; fail=1; }
numeric=0
while IFS=$'\t' read -r path opt kind allowed required; do
  case $kind in
    int|number|duration|size|int-list|number-list)
      numeric=$((numeric + 1))
      while IFS= read -r v; do
        [ "$v" = "<empty>" ] && v=""
        bad "$path $opt '$v'" "$opt" - $path "$opt" "$v"
      done < <(range_values "$kind" "$allowed") ;;
    choice) bad "$path $opt no-such-choice" "$opt" - $path "$opt" no-such-choice ;;
  esac
done < "$WORK/options.tsv"
echo "  options: $(wc -l < "$WORK/options.tsv") declared, $numeric with a range"
# Every option that takes a number declares its range (a plain add_option would slip through).
while IFS=$'\t' read -r path opt kind allowed required; do
  case "$opt" in --tp|--pp|--nodes|--steps|--seed|--threads|--block|--*-size*|--*-mb|--*timeout*|--*grace*|--max-*)
    [ "$kind" != text ] || { echo "FAIL: $path $opt takes a number but declares no range"; fail=1; } ;;
  esac
done < "$WORK/options.tsv"

# --- every config key -------------------------------------------------------------------------
"$LT" train --help-config > "$WORK/keys.txt" || { echo "FAIL: train --help-config"; exit 1; }
base=(model=stories260k data.path="$WORK/none.bin" run.dir="$WORK/case/run" train.steps=4
      train.global_batch_size=4 train.seq_len=32)
keys=0
while read -r key rest; do
  [[ "$key" =~ ^[a-z_]+(\.[a-z_]+)*$ ]] || continue
  keys=$((keys + 1))
  line="$key $rest"
  type=$(grep -oiE '(^| )(int|integer|float|number|bool|boolean|string|text|list|enum)( |$)' <<< " $rest" | head -1 | tr -d ' ' | tr A-Z a-z)
  range=$(grep -oE '[[(] *-?[0-9.eE+]+, *-?[0-9.eE+]+ *[])]' <<< "$rest" | head -1 | tr -d ' ' | sed 's/,/, /')
  # ">= lo" (no upper bound) as a closed range up to a bound range_values never crosses.
  [ -n "$range" ] || range=$(grep -oE '>= -?[0-9.eE+]+' <<< "$rest" | head -1 | sed 's/>= \(.*\)/[\1, 1e19]/')
  if [ -z "$type" ]; then  # no type column yet: infer it from the default
    def=$(awk '{print $1}' <<< "$rest")
    case $def in
      true|false) type=bool ;;
      -[0-9]*|[0-9]*) [[ "$def" =~ ^-?[0-9]+$ ]] && type=int || type=float ;;
      *) type=string ;;
    esac
  fi
  case $type in
    int|integer) vals=$(range_values int "$range") ;;
    float|number) vals=$(range_values number "$range") ;;
    bool|boolean) vals=$'maybe\n2' ;;
    enum) vals=no-such-choice ;;
    *) vals="" ;;
  esac
  while IFS= read -r v; do
    [ -n "$v" ] || continue
    [ "$v" = "<empty>" ] && continue
    bad "config $key=$v" "$key" - train "${base[@]}" "$key=$v"
  done <<< "$vals"
done < "$WORK/keys.txt"
echo "  config keys: $keys"
[ $keys -gt 30 ] || { echo "FAIL: --help-config lists too few keys"; fail=1; }

# --- every environment variable ---------------------------------------------------------------
"$LT" --list-env > "$WORK/env.tsv" || { echo "FAIL: --list-env"; exit 1; }
while IFS=$'\t' read -r var allowed meaning; do
  case $allowed in
    "an integer in "*) vals=$(range_values int "${allowed#an integer in }") ;;
    "a number in "*) vals=$(range_values number "${allowed#a number in }") ;;
    "integers in "*) vals=$(range_values int-list "$(sed 's/^integers in \(\[[^]]*\]\).*/\1/' <<< "$allowed")"; echo "1,,2") ;;
    1/true*) vals=maybe ;;
    *) vals=""; case $var in *HEALTHCHECK*) vals="bogus:1" ;; esac ;;
  esac
  while IFS= read -r v; do
    [ -n "$v" ] && [ "$v" != "<empty>" ] || continue
    bad "env $var=$v" "$var" "$var=$v" model info --model stories260k
  done <<< "$vals"
done < "$WORK/env.tsv"

# --- messages that used to name the wrong thing -----------------------------------------------
mkdir -p "$WORK/a_dir"
bad "a directory as --config" "'$WORK/a_dir' is a directory" - train --config "$WORK/a_dir"
bad "unknown command" "unknown command 'trian'" - trian
bad "unknown data command" "unknown command 'data inspct'" - data inspct x
bad "missing required option" "--input is required" - convert --to hf --output x
bad "procs-per-node 0 (given, not missing)" "--procs-per-node: expected an integer in [1," - launch --procs-per-node 0
bad "an unknown option" "--no-such-option" - healthcheck --no-such-option
bad "llama2c output under a missing directory names the file" "llama2.c file '$WORK/nowhere/model.bin'" - \
  convert --to llama2c --input "$SRC/assets/stories260k/stories260K.bin" --output "$WORK/nowhere/model.bin"
echo x > "$WORK/a_file"
bad "a dataset output under a file names the output" "dataset '$WORK/a_file/data' cannot be created" - \
  prepare "$WORK/a_file" -o "$WORK/a_file/data" --tokenizer "$SRC/assets/stories260k/tok512.model"
bad "an HF export under a file names the output" "Hugging Face export '$WORK/a_file/hf' cannot be created" - \
  convert --to hf --input "$SRC/assets/stories260k/stories260K.bin" --output "$WORK/a_file/hf"
echo "  $cases bad inputs checked"
[ $fail -eq 0 ] && echo "ok: every bad input: exit 1, one error naming it, nothing written"
exit $fail
