#!/usr/bin/env bash
# Training throughput on the GPU, ours and PyTorch's (bf16 autocast, fused AdamW, SDPA,
# torch.compile) on the same shapes in the same call (bench/gpu_check.sh runs it):
#   124M Llama   d768 L12 H12 V32000 F2048 (bench/configs/llama124m.json), T 1024, B 16
#   TinyLlama    1.1B (bench/configs/tinyllama-1.1b.json), T 2048, B 8
# 3 warm-up and 10 timed steps each, AdamW with clipping. Prints one JSON line per run and a
# summary line: tokens/s, MFU under two FLOP conventions (attention counted as 6·T·D and as
# 12·T·D per layer and token, on top of 6 x the matrix parameters incl. the LM head), peak GPU
# memory (nvidia-smi, sampled every 100 ms, the process's whole footprint), and with ours the
# CUDA stage's time per kernel category (LT_CUDA_PROFILE).
#
#   bench/gpu_train_bench.sh [--ours-only|--pytorch-only] -- LLAMATRAIN_COMMAND...
set -euo pipefail
cd "$(dirname "$0")/.."
which=both
case "${1:-}" in --ours-only) which=ours; shift ;; --pytorch-only) which=pytorch; shift ;; esac
[ "${1:-}" = -- ] && shift
LT=("$@")
W=$(mktemp -d)
trap 'rm -rf "$W"; kill $(jobs -p) 2>/dev/null || true' EXIT
python3 bench/random_tokens.py "$W/tokens.bin"
PEAK=${LT_PEAK_TFLOPS:-989}  # H100/H200 SXM dense bf16

sample_memory() { nvidia-smi --query-gpu=memory.used --format=csv,noheader,nounits -lms 100 > "$1" 2>/dev/null & }
peak_mib() { sort -n "$1" | tail -1; }

report() {  # report IMPL CONFIG B T TOKENS_PER_S PEAK_MIB EXTRA_JSON
  python3 - "$@" "$PEAK" <<'PY'
import json, sys
impl, cfg, B, T, tps, mib, extra, peak = sys.argv[1:9]
c = json.load(open(cfg)); B, T, tps = int(B), int(T), float(tps)
D, L, F, V = c["hidden_size"], c["num_hidden_layers"], c["intermediate_size"], c["vocab_size"]
KV = c["num_key_value_heads"] * D // c["num_attention_heads"]
matrix = L * (2 * D * D + 2 * D * KV + 3 * D * F) + V * D          # GEMM parameters incl. the LM head
f6, f12 = 6 * matrix + 6 * L * T * D, 6 * matrix + 12 * L * T * D  # FLOPs per token
out = {"impl": impl, "config": cfg, "batch": B, "seq": T, "tokens_per_s": round(tps, 1),
       "mfu_attn_6TD": round(tps * f6 / (float(peak) * 1e12), 4), "mfu_attn_12TD": round(tps * f12 / (float(peak) * 1e12), 4),
       "peak_gpu_mib": int(mib or 0)}
out.update(json.loads(extra))
print(json.dumps(out), flush=True)
PY
}

ours() {  # ours CONFIG B T
  local cfg=$1 B=$2 T=$3 dir=$W/ours_$(basename "$1" .json)
  sample_memory "$W/mem_ours"
  local pid=$!
  LT_CUDA_PROFILE=1 "${LT[@]}" train model="$cfg" data.path="$W/tokens.bin" data.shuffle=false run.dir="$dir" \
    train.device=cuda train.precision=bf16 train.seq_len="$T" train.global_batch_size="$B" train.micro_batch_size="$B" \
    train.steps=13 optim.warmup_steps=1 optim.grad_clip=1.0 train.log_every=13 checkpoint.at_end=false \
    > "$dir.log" 2>&1 || { kill $pid; tail -30 "$dir.log"; return 1; }
  kill $pid
  # The mean of the last 10 steps' times (the first 3 are the warm-up).
  local tps
  tps=$(python3 -c "
import json,sys
s=[json.loads(l) for l in open('$dir/metrics.jsonl') if '\"step_s\"' in l]
t=[x['step_s'] for x in s][-10:]
print($B*$T/(sum(t)/len(t)))")
  local profile
  profile=$(awk '/CUDA stage profile/{p=1;next} p&&NF==4&&$1!="category"{printf "%s\"%s\": %s", (n++?", ":""), $1, $2}' "$dir.log")
  report ours "$cfg" "$B" "$T" "$tps" "$(peak_mib "$W/mem_ours")" "{\"profile_ms\": {$profile}}"
}

pytorch() {  # pytorch CONFIG B T
  sample_memory "$W/mem_pt"
  local pid=$! line
  line=$(python3 bench/pytorch_gpu_bench.py "$1" "$2" "$3" 2> "$W/pt.log" | tail -1) || { kill $pid; tail -20 "$W/pt.log"; return 1; }
  kill $pid
  report pytorch "$1" "$2" "$3" "$(python3 -c "import json; print(json.loads('''$line''')['tokens_per_s'])")" \
    "$(peak_mib "$W/mem_pt")" "$line"
}

for shape in "bench/configs/llama124m.json 16 1024" "bench/configs/tinyllama-1.1b.json 8 2048"; do
  read -r cfg B T <<< "$shape"
  [ $which = pytorch ] || ours "$cfg" "$B" "$T" || echo "{\"impl\": \"ours\", \"config\": \"$cfg\", \"failed\": true}"
  [ $which = ours ] || pytorch "$cfg" "$B" "$T" || echo "{\"impl\": \"pytorch\", \"config\": \"$cfg\", \"failed\": true}"
done
