"""Generate the PyTorch reference fixtures for the C++ Llama trainer (llm.c-style debug states).

Writes tests/fixtures/<name>.safetensors for each config in CONFIGS; see tests/fixtures/README.md
for the contents and docs/FORMATS.md for the optimizer semantics. Run from the repo root:

    /usr/bin/python3 tools/make_fixtures.py

The reference is computed in float64 from fp32-drawn initial weights, and stored as fp32.
The script checks itself: finite-difference gradients, a hand-written AdamW against
torch.optim.AdamW, that clipping triggers, that the loss goes down, and the written files read back.
"""
import json
import math
import os
import sys
from collections import OrderedDict

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_ref as ref  # noqa: E402
import safetensors_io  # noqa: E402

OUT_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")

OPTIM = OrderedDict(
    type="adamw", beta1=0.9, beta2=0.95, eps=1e-8, weight_decay=0.1,
    no_decay="names ending in 'layernorm.weight' and 'model.norm.weight'",
    grad_clip=1.0, clip_eps=1e-6, warmup_steps=3, total_steps=10, max_lr=1e-2, min_lr=1e-3, steps=10,
    lr_schedule="s<warmup: max_lr*(s+1)/warmup; else p=(s-warmup)/(total-warmup), "
                "lr=min_lr+0.5*(max_lr-min_lr)*(1+cos(pi*p))",
    update="clip grads (coef=grad_clip/(norm+clip_eps), only if coef<1); p-=lr*wd*p (decay params); "
           "m=b1*m+(1-b1)*g; v=b2*v+(1-b2)*g^2; p-=(lr/(1-b1^t))*m/(sqrt(v)/sqrt(1-b2^t)+eps), t=s+1",
    same_batch_every_step=True)

# With grad_clip 1.0 these tiny models clip on every one of the 10 steps; the mqa fixture uses 2.0 so
# that it clips on some steps and not on others (both branches of the clipping rule are exercised).
# Tests must read the optimizer settings from each file's "optim" metadata.
GRAD_CLIP = {"gqa2": 1.0, "gqa4_tied": 1.0, "mqa": 2.0}

# name -> (config, batch, seq, seed); shapes deliberately awkward (no multiples of 8/16, odd hidden).
CONFIGS = OrderedDict([
    ("gqa2", (ref.LlamaConfig(hidden_size=48, intermediate_size=100, num_hidden_layers=2,
                              num_attention_heads=6, num_key_value_heads=3, vocab_size=67,
                              max_position_embeddings=64), 3, 13, 1001)),
    ("gqa4_tied", (ref.LlamaConfig(hidden_size=64, intermediate_size=172, num_hidden_layers=3,
                                   num_attention_heads=8, num_key_value_heads=2, vocab_size=96,
                                   max_position_embeddings=64, rms_norm_eps=1e-6, rope_theta=500000.0,
                                   tie_word_embeddings=True), 2, 17, 1002)),
    ("mqa", (ref.LlamaConfig(hidden_size=40, intermediate_size=99, num_hidden_layers=2,
                             num_attention_heads=4, num_key_value_heads=1, vocab_size=50,
                             max_position_embeddings=64), 4, 11, 1003)),
])


def make_batch(cfg, B, T, gen):
    tokens = torch.randint(0, cfg.vocab_size, (B, T + 1), generator=gen)
    inputs, targets = tokens[:, :-1].clone(), tokens[:, 1:].clone()
    # A few ignored positions: first and last position of some rows plus random ones.
    targets[0, 0] = ref.IGNORE_INDEX
    targets[B - 1, T - 1] = ref.IGNORE_INDEX
    for _ in range(2):
        targets[torch.randint(0, B, (1,), generator=gen), torch.randint(0, T, (1,), generator=gen)] = ref.IGNORE_INDEX
    return inputs, targets


def loss_of(model, inputs, targets):
    return model(inputs, targets)[1]


def finite_difference_check(model, inputs, targets, gen, n_per_param=2, h=1e-5):
    """Central differences in float64 on a few entries of every parameter."""
    model.zero_grad()
    loss_of(model, inputs, targets).backward()
    worst = 0.0
    with torch.no_grad():
        for name, p in model.named_parameters():
            for _ in range(n_per_param):
                i = int(torch.randint(0, p.numel(), (1,), generator=gen))
                flat = p.view(-1)
                old = flat[i].item()
                flat[i] = old + h
                lp = loss_of(model, inputs, targets).item()
                flat[i] = old - h
                lm = loss_of(model, inputs, targets).item()
                flat[i] = old
                fd = (lp - lm) / (2 * h)
                an = p.grad.view(-1)[i].item()
                err = abs(fd - an) / max(1e-4, abs(an))
                worst = max(worst, err)
                assert err < 1e-5, f"finite difference mismatch {name}[{i}]: fd {fd} vs autograd {an}"
    model.zero_grad()
    return worst


def adamw_by_hand(params0, grads_fn, lrs, o):
    """Hand-written AdamW (the documented semantics), to confirm torch.optim.AdamW does exactly this."""
    p = OrderedDict((n, t.clone()) for n, t in params0.items())
    m = {n: torch.zeros_like(t) for n, t in p.items()}
    v = {n: torch.zeros_like(t) for n, t in p.items()}
    for s, lr in enumerate(lrs):
        g = grads_fn(p)
        norm = math.sqrt(sum(float((x * x).sum()) for x in g.values()))
        coef = o["grad_clip"] / (norm + o["clip_eps"])
        if coef < 1.0:
            g = {n: x * coef for n, x in g.items()}
        t = s + 1
        for n in p:
            if not ref.is_norm_weight(n):
                p[n] = p[n] * (1 - lr * o["weight_decay"])
            m[n] = o["beta1"] * m[n] + (1 - o["beta1"]) * g[n]
            v[n] = o["beta2"] * v[n] + (1 - o["beta2"]) * g[n] * g[n]
            denom = v[n].sqrt() / math.sqrt(1 - o["beta2"] ** t) + o["eps"]
            p[n] = p[n] - (lr / (1 - o["beta1"] ** t)) * m[n] / denom
    return p


def train(model, inputs, targets, o):
    opt = ref.make_adamw(model, lr=0.0, betas=(o["beta1"], o["beta2"]), eps=o["eps"], weight_decay=o["weight_decay"])
    losses, norms, lrs = [], [], []
    for s in range(o["steps"]):
        lr = ref.lr_at(s, o["warmup_steps"], o["total_steps"], o["max_lr"], o["min_lr"])
        for g in opt.param_groups:
            g["lr"] = lr
        opt.zero_grad()
        loss = loss_of(model, inputs, targets)
        loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), o["grad_clip"])
        opt.step()
        losses.append(loss.item()), norms.append(float(norm)), lrs.append(lr)
    return losses, norms, lrs


def make_one(name, cfg, B, T, seed):
    o = OrderedDict(OPTIM, grad_clip=GRAD_CLIP[name])
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = ref.LlamaForCausalLM(cfg)
    ref.init_weights(model, gen)
    init_fp32 = OrderedDict((n, p.detach().clone()) for n, p in model.named_parameters())
    inputs, targets = make_batch(cfg, B, T, gen)
    model = model.double()

    # Forward + backward at the initial weights.
    logits, loss = model(inputs, targets)
    loss.backward()
    grads = OrderedDict((n, p.grad.detach().clone()) for n, p in model.named_parameters())
    model.zero_grad()
    fd_worst = finite_difference_check(model, inputs, targets, gen)

    # Logits must not be degenerate (near-uniform softmax would hide bugs in the head/norm).
    assert logits.std().item() > 0.1, f"{name}: logits too flat (std {logits.std().item()})"
    assert len(torch.unique(logits.argmax(-1))) > 3, f"{name}: argmax collapsed"

    # 10 AdamW steps on the same batch.
    params0 = OrderedDict((n, p.detach().clone()) for n, p in model.named_parameters())
    losses, norms, lrs = train(model, inputs, targets, o)
    final = OrderedDict((n, p.detach().clone()) for n, p in model.named_parameters())
    assert abs(losses[0] - loss.item()) < 1e-12
    assert any(n > o["grad_clip"] for n in norms), f"{name}: clipping never triggers: {norms}"
    if name == "mqa":
        assert any(n < o["grad_clip"] for n in norms), f"{name}: clipping always triggers: {norms}"
    assert losses[-1] < 0.8 * losses[0], f"{name}: loss does not go down: {losses}"

    # The documented semantics, written by hand, must give the same weights as torch.optim.AdamW.
    check = ref.LlamaForCausalLM(cfg).double()

    def grads_fn(p):
        with torch.no_grad():
            for n, t in check.named_parameters():
                t.copy_(p[n])
        check.zero_grad()
        loss_of(check, inputs, targets).backward()
        return OrderedDict((n, t.grad.detach().clone()) for n, t in check.named_parameters())

    by_hand = adamw_by_hand(params0, grads_fn, lrs, o)
    adam_diff = max((by_hand[n] - final[n]).abs().max().item() for n in final)
    assert adam_diff < 1e-12, f"{name}: hand AdamW differs from torch by {adam_diff}"

    # How far an fp32 run drifts from the float64 reference (guidance for test tolerances).
    m32 = ref.LlamaForCausalLM(cfg)
    with torch.no_grad():
        for n, p in m32.named_parameters():
            p.copy_(init_fp32[n])
    logits32, _ = m32(inputs, targets)
    losses32, _, _ = train(m32, inputs, targets, o)
    drift = {
        "logits": (logits32.double() - logits).abs().max().item(),
        "final_weights": max((p.double() - final[n]).abs().max().item() for n, p in m32.named_parameters()),
        "train_losses": max(abs(a - b) for a, b in zip(losses32, losses)),
    }

    t = OrderedDict()
    t.update(init_fp32)
    t["inputs"] = inputs.to(torch.int32)
    t["targets"] = targets.to(torch.int32)
    t["logits"] = logits.detach().float()
    t["loss"] = torch.tensor([loss.item()], dtype=torch.float32)
    for n, g in grads.items():
        t["grad." + n] = g.float()
    t["train_losses"] = torch.tensor(losses, dtype=torch.float32)
    t["grad_norms"] = torch.tensor(norms, dtype=torch.float32)
    t["lrs"] = torch.tensor(lrs, dtype=torch.float32)
    for n, p in final.items():
        t["final." + n] = p.float()
    meta = OrderedDict(
        format="llamatrain-reference-fixture", version="1", config=cfg.to_json(), optim=json.dumps(o),
        batch=str(B), seq=str(T), seed=str(seed), compute_dtype="float64", stored_dtype="float32",
        ignore_index=str(ref.IGNORE_INDEX), loss="mean cross-entropy over targets != ignore_index",
        torch=torch.__version__, generator="tools/make_fixtures.py")
    path = os.path.join(OUT_DIR, name + ".safetensors")
    safetensors_io.save(path, t, meta)

    back, meta_back = safetensors_io.load(path)
    assert list(back) == list(t) and meta_back["config"] == meta["config"]
    for n in t:
        assert torch.equal(back[n], t[n]), n

    print(f"{name}: {os.path.getsize(path)} bytes, loss {loss.item():.5f} -> {losses[-1]:.5f}, "
          f"grad norms {['%.3f' % n for n in norms]}, fd worst rel err {fd_worst:.2e}, "
          f"hand-AdamW diff {adam_diff:.1e}, fp32-run drift {json.dumps({k: float('%.2e' % v) for k, v in drift.items()})}")


def check_rope_convention():
    """HF rotate_half RoPE on HF-ordered weights == Meta interleaved RoPE on Meta-ordered weights (scores)."""
    gen = torch.Generator().manual_seed(7)
    cfg = ref.LlamaConfig(hidden_size=48, intermediate_size=8, num_hidden_layers=1, num_attention_heads=4,
                          num_key_value_heads=4, vocab_size=8, rope_theta=500.0)
    T, hd = 9, cfg.head_dim
    x = torch.randn(T, cfg.hidden_size, generator=gen, dtype=torch.float64)
    wq_meta = torch.randn(cfg.hidden_size, cfg.hidden_size, generator=gen, dtype=torch.float64)
    wk_meta = torch.randn(cfg.hidden_size, cfg.hidden_size, generator=gen, dtype=torch.float64)
    heads = lambda y: y.view(T, 4, hd).transpose(0, 1)  # noqa: E731
    qm, km = ref.rope_meta(heads(x @ wq_meta.T), cfg.rope_theta), ref.rope_meta(heads(x @ wk_meta.T), cfg.rope_theta)
    cos, sin = ref.rope_cos_sin(cfg, T, torch.float64)
    qh = ref.apply_rope(heads(x @ ref.meta_to_hf_qk(wq_meta, 4).T), cos, sin)
    kh = ref.apply_rope(heads(x @ ref.meta_to_hf_qk(wk_meta, 4).T), cos, sin)
    diff = ((qm @ km.transpose(-1, -2)) - (qh @ kh.transpose(-1, -2))).abs().max().item()
    assert diff < 1e-9, f"RoPE conventions disagree: {diff}"
    # Position 0 is not rotated; pair (i, i + hd/2) at position 1 rotates by theta^(-2i/hd).
    assert torch.allclose(qh[:, 0], heads(x @ ref.meta_to_hf_qk(wq_meta, 4).T)[:, 0])


def main():
    torch.set_num_threads(1)
    check_rope_convention()
    os.makedirs(OUT_DIR, exist_ok=True)
    for name, (cfg, B, T, seed) in CONFIGS.items():
        make_one(name, cfg, B, T, seed)


if __name__ == "__main__":
    main()
