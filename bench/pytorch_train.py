"""PyTorch training-throughput baseline for llamatrain (same Llama as tools/llama_ref.py).

Trains on random tokens with AdamW (+ grad clipping, as our trainer does) and prints ONE JSON line:
{"impl": "pytorch", "torch": ..., "dtype": ..., "tokens_per_s": ..., "step_s": ..., "peak_rss_gb": ...}
Warm-up steps are excluded from the timing. Run with Debian's /usr/bin/python3, e.g.
    /usr/bin/python3 bench/pytorch_train.py --dim 288 --layers 6 --heads 6 --kv-heads 6 --hidden 768 \
        --vocab 32000 --seq 256 --batch 32 --steps 10 --warmup 2 --dtype fp32 --threads 2
"""
import argparse
import contextlib
import json
import os
import resource
import sys
import time

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tools"))
import llama_ref as ref  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dim", type=int, default=288)
    ap.add_argument("--layers", type=int, default=6)
    ap.add_argument("--heads", type=int, default=6)
    ap.add_argument("--kv-heads", type=int, default=None, help="default: --heads")
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--vocab", type=int, default=32000)
    ap.add_argument("--seq", type=int, default=256)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=10, help="timed steps")
    ap.add_argument("--warmup", type=int, default=2, help="untimed steps first")
    ap.add_argument("--dtype", choices=["fp32", "bf16"], default="fp32",
                    help="bf16 = torch.autocast(cpu, bfloat16) with fp32 master weights")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--tied", action="store_true", help="tie lm_head to the embedding")
    ap.add_argument("--seed", type=int, default=1234)
    a = ap.parse_args()
    if a.steps < 1:
        ap.error("--steps must be >= 1 (timed steps)")

    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    cfg = ref.LlamaConfig(hidden_size=a.dim, intermediate_size=a.hidden, num_hidden_layers=a.layers,
                          num_attention_heads=a.heads, num_key_value_heads=a.kv_heads or a.heads,
                          vocab_size=a.vocab, max_position_embeddings=a.seq, tie_word_embeddings=a.tied)
    model = ref.LlamaForCausalLM(cfg)
    ref.init_weights(model, torch.Generator().manual_seed(a.seed))
    opt = ref.make_adamw(model, lr=1e-4, betas=(0.9, 0.95), eps=1e-8, weight_decay=0.1)
    tokens = torch.randint(0, a.vocab, (a.batch, a.seq + 1))
    inputs, targets = tokens[:, :-1], tokens[:, 1:]

    def step():
        ctx = torch.autocast("cpu", dtype=torch.bfloat16) if a.dtype == "bf16" else contextlib.nullcontext()
        opt.zero_grad(set_to_none=True)
        with ctx:
            _, loss = model(inputs, targets)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        return loss.item()

    for _ in range(a.warmup):
        step()
    loss = float("nan")
    t0 = time.perf_counter()
    for _ in range(a.steps):
        loss = step()
    dt = (time.perf_counter() - t0) / max(1, a.steps)
    peak_kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    print(json.dumps({
        "impl": "pytorch", "torch": torch.__version__, "dtype": a.dtype, "threads": a.threads,
        "tcmalloc": "tcmalloc" in os.environ.get("LD_PRELOAD", ""),
        "params": sum(p.numel() for p in model.parameters()), "batch": a.batch, "seq": a.seq,
        "steps": a.steps, "loss": round(loss, 4),
        "tokens_per_s": round(a.batch * a.seq / dt, 1), "step_s": round(dt, 4),
        "peak_rss_gb": round(peak_kb / 2**20, 3)}))


if __name__ == "__main__":
    main()
