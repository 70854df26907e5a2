"""Summarises bench/parallel_bench.sh: tokens/s, pipeline bubble and bytes per step vs analysis."""
import glob, json, math, os, sys

out = sys.argv[1]
D, T, MBS, GBS, V = 288, 256, 1, 8, 32000
N = MBS * T
rows = []
for name in ["single", "dp2", "dp2_zero1", "tp2", "pp2", "tp2pp2", "pp4", "dp4_zero1"]:
    ranks = [json.load(open(f)) for f in sorted(glob.glob(f"{out}/{name}/ranks/rank_*.json"))]
    if not ranks:
        continue
    model = json.load(open(f"{out}/{name}.model.json"))
    tp = 1 + max(r["tp_rank"] for r in ranks)
    pp = 1 + max(r["pp_rank"] for r in ranks)
    dp = 1 + max(r["dp_rank"] for r in ranks)
    M = ranks[0]["micro_batches"]
    zero1 = "zero1" in name
    step_s = max(r["step_s"] for r in ranks)
    tps = GBS * T / step_s
    # Measured bubble: the share of the step the stages spend waiting on pipeline messages.
    bubble = sum(r["pipeline_wait_s_per_step"] / r["step_s"] for r in ranks) / len(ranks) if pp > 1 else 0.0
    bubble_model = (pp - 1) / (M + pp - 1)
    sent, expect = 0.0, 0.0
    for r in ranks:
        sh = next(s for s in model["shards"] if s["tp_rank"] == r["tp_rank"] and s["pp_rank"] == r["pp_rank"])
        layers = sh["layers"][1] - sh["layers"][0]
        first, last = r["pp_rank"] == 0, r["pp_rank"] == pp - 1
        e = 0.0
        if tp > 1:  # ring all-reduce sends 2(t-1)/t of the payload
            payload = 4 * ((4 * layers + first + last) * N * D + last * 3 * N) * M
            e += 2 * (tp - 1) / tp * payload
        if pp > 1:
            e += 4 * N * D * M * ((not last) + (not first))
        if dp > 1:
            padded = math.ceil(sh["num_parameters"] / (dp * 16)) * dp * 16
            e += (2 if not zero1 else 2) * (dp - 1) / dp * 4 * padded
        expect += e
        sent += sum(c["sent_bytes_per_step"] for k, c in r["comm"].items() if k != "world")
    rows.append((name, len(ranks), tp, pp, dp, M, tps, step_s, bubble, bubble_model, sent / len(ranks), expect / len(ranks)))

print("| layout | ranks | tp | pp | dp | micro-batches | tokens/s | s/step | bubble measured | (p-1)/(m+p-1) | MB sent/rank/step | analytical |")
print("|---|---|---|---|---|---|---|---|---|---|---|---|")
for r in rows:
    print(f"| {r[0]} | {r[1]} | {r[2]} | {r[3]} | {r[4]} | {r[5]} | {r[6]:.0f} | {r[7]:.2f} | {r[8]:.2f} | {r[9]:.2f} | {r[10]/1e6:.2f} | {r[11]/1e6:.2f} |")
