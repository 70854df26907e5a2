"""Learning-rate schedules computed by PyTorch's own schedulers (torch.optim.lr_scheduler),
phase by phase, as the independent reference for train/schedule.h.

Writes tests/fixtures/lr_schedules.json: a list of {config, lrs} where config holds the
schedule's settings (our keys) and lrs[s] is the learning rate of update s (0-based), for
s in [0, steps). Phases (W warm-up, S decay start, E decay end; see train/schedule.h):
  warm-up   LinearLR from (lr0 + (lr - lr0)/W)/lr to 1 over W - 1 iterations
  cosine    CosineAnnealingLR(T_max = E - start, eta_min = min_lr)
  linear    LinearLR(1 -> min_lr/lr over E - start iterations)
  constant  ConstantLR(factor 1)
  1-sqrt    LambdaLR: min_lr + (lr - min_lr)(1 - sqrt(t / (E - S)))  (Hagele et al. 2024, eq. 1)
  after E   min_lr (constant: lr)
Usage: /usr/bin/python3 tools/make_lr_fixture.py
"""
import json
import math
import os

import torch
from torch.optim import SGD
from torch.optim.lr_scheduler import ConstantLR, CosineAnnealingLR, LambdaLR, LinearLR


def run(make, lr, n):
    """The first n learning rates of a scheduler built by make(optimizer) on base lr."""
    opt = SGD([torch.zeros(1, requires_grad=True)], lr=lr)
    sched = make(opt)
    out = []
    for _ in range(n):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def schedule(c):
    lr, mn, W, E, steps = c["lr"], c["min_lr"], c["warmup"], c["decay"], c["steps"]
    lr0 = c.get("warmup_lr", 0.0)
    kind = c["kind"]
    out = []
    if W > 0:
        start = (lr0 + (lr - lr0) / W) / lr
        out += run(lambda o: LinearLR(o, start_factor=start, end_factor=1.0, total_iters=max(W - 1, 1)), lr, W)
    if kind == "constant":
        out += [lr] * (steps - len(out))
        return out[:steps]
    if kind == "wsd":
        S = E - (c["cooldown"] if c.get("cooldown", 0) > 0 else round(c["decay_fraction"] * E))
        S = max(S, W)
        out += run(lambda o: ConstantLR(o, factor=1.0, total_iters=0), lr, S - W)
        shape, n = c["shape"], E - S
    else:
        shape, n = kind, E - W
    if shape == "cosine":
        out += run(lambda o: CosineAnnealingLR(o, T_max=n, eta_min=mn), lr, n)
    elif shape == "linear":
        out += run(lambda o: LinearLR(o, start_factor=1.0, end_factor=mn / lr, total_iters=n), lr, n)
    else:  # 1-sqrt
        out += run(lambda o: LambdaLR(o, lambda t: (mn + (lr - mn) * (1 - math.sqrt(t / n))) / lr), lr, n)
    out += [mn] * max(0, steps - len(out))
    return out[:steps]


CONFIGS = [
    {"kind": "cosine", "lr": 3e-3, "min_lr": 3e-4, "warmup": 10, "decay": 120, "steps": 130},
    {"kind": "linear", "lr": 1e-3, "min_lr": 0.0, "warmup": 5, "decay": 40, "steps": 45},
    {"kind": "constant", "lr": 2e-4, "min_lr": 0.0, "warmup": 7, "decay": 30, "steps": 30},
    {"kind": "wsd", "lr": 3e-3, "min_lr": 3e-4, "warmup": 10, "decay": 120, "steps": 125, "shape": "1-sqrt",
     "decay_fraction": 0.2, "cooldown": 0},
    {"kind": "wsd", "lr": 1e-3, "min_lr": 1e-5, "warmup": 4, "decay": 50, "steps": 50, "shape": "cosine",
     "decay_fraction": 0.5, "cooldown": 0},
    {"kind": "wsd", "lr": 1e-3, "min_lr": 0.0, "warmup": 0, "decay": 60, "steps": 60, "shape": "linear",
     "decay_fraction": 0.2, "cooldown": 25},
    # Re-warming a pretrained model from the previous run's final lr to a new peak.
    {"kind": "wsd", "lr": 3e-3, "min_lr": 3e-4, "warmup": 8, "warmup_lr": 3e-4, "decay": 40, "steps": 40,
     "shape": "1-sqrt", "decay_fraction": 0.25, "cooldown": 0},
]


def main():
    out = [{"config": c, "lrs": schedule(c)} for c in CONFIGS]
    path = os.path.join(os.path.dirname(__file__), "..", "tests", "fixtures", "lr_schedules.json")
    with open(path, "w") as f:
        json.dump({"generator": "tools/make_lr_fixture.py", "torch": torch.__version__, "schedules": out}, f, indent=1)
        f.write("\n")
    print("wrote", os.path.normpath(path), len(out), "schedules")


if __name__ == "__main__":
    main()
