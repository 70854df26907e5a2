"""Model-level PyTorch fixtures at real Llama head sizes (64 and 128), which take the tiled CPU
attention kernels and the shapes GPU kernels are written for.

Writes tests/fixtures/hd64_gqa4.safetensors and hd128_gqa8.safetensors; tests/fixtures/README.md
describes them. Run from the repo root with Debian's torch:

    /usr/bin/python3 tools/make_headdim_fixtures.py

The models are large enough that storing every weight and gradient would take megabytes, so:
- the initial weights are not stored but defined by a formula both sides compute (hash_uniform:
  splitmix64 of the parameter's name hash and the element index -> 24 random bits -> exactly
  representable fp32 values), linear/embedding weights 0.03·u, norm weights 1 + 0.1·u;
- each gradient (at the initial weights) and each final weight (after 10 AdamW steps) is stored
  as its sum of squares, 16 random ±1 projections and 64 sampled elements (indices and signs
  from the same hash). A wrong gradient anywhere changes its projections by about its error's
  norm, so the check covers every element, at a few hundred bytes per tensor.
Logits, loss, per-step losses, gradient norms and learning rates are stored in full.
The reference is computed in float64 and stored as float32, like tools/make_fixtures.py.
"""
import json
import os
import sys
from collections import OrderedDict

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_ref as ref  # noqa: E402
import make_fixtures as mf  # noqa: E402
import safetensors_io  # noqa: E402

OUT_DIR = mf.OUT_DIR
M64 = (1 << 64) - 1
PROJECTIONS, SAMPLES = 16, 64
LINEAR_SCALE, NORM_JITTER = 0.03, 0.1

# name -> (config, batch, seq, seed): sequence lengths that are not multiples of 64 (the CPU
# tile), GQA groups 4 and 8, one tied model.
CONFIGS = OrderedDict([
    ("hd64_gqa4", (ref.LlamaConfig(hidden_size=512, intermediate_size=256, num_hidden_layers=2,
                                   num_attention_heads=8, num_key_value_heads=2, vocab_size=160,
                                   max_position_embeddings=128), 2, 80, 2001)),
    ("hd128_gqa8", (ref.LlamaConfig(hidden_size=1024, intermediate_size=192, num_hidden_layers=1,
                                    num_attention_heads=8, num_key_value_heads=1, vocab_size=96,
                                    max_position_embeddings=128, rope_theta=500000.0,
                                    tie_word_embeddings=True), 1, 100, 2002)),
])


def fnv1a64(s):
    h = 0xCBF29CE484222325
    for ch in s.encode():
        h = ((h ^ ch) * 1099511628211) & M64
    return h


def splitmix64(x):
    """Vectorised over a uint64 numpy array (wrapping arithmetic)."""
    with np.errstate(over="ignore"):
        z = x + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def hash_bits(name, salt, n):
    """splitmix64(fnv1a64(name) ^ salt + i) for i < n."""
    with np.errstate(over="ignore"):
        base = np.uint64(fnv1a64(name) ^ salt)
        return splitmix64(base + np.arange(n, dtype=np.uint64))


def hash_uniform(name, n):
    """u in [-1, 1): 24 random bits, exact in fp32."""
    bits = hash_bits(name, 0, n) >> np.uint64(40)
    return bits.astype(np.float64) / float(1 << 23) - 1.0


def init_weights(model):
    with torch.no_grad():
        for name, p in model.named_parameters():
            u = torch.from_numpy(hash_uniform(name, p.numel())).view(p.shape)
            w = 1.0 + NORM_JITTER * u if ref.is_norm_weight(name) else LINEAR_SCALE * u
            p.copy_(w.to(torch.float32))


def projections(name, x):
    """Σx², the 16 ±1 projections and the 64 sampled elements of x (float64)."""
    flat = x.reshape(-1).to(torch.float64)
    n = flat.numel()
    proj = []
    for k in range(PROJECTIONS):
        signs = (hash_bits(name, 0x5BD1E995 * (k + 1), n) >> np.uint64(63)).astype(np.float64) * 2.0 - 1.0
        proj.append(float((torch.from_numpy(signs) * flat).sum()))
    idx = (hash_bits(name, 0xABCDEF, SAMPLES) % np.uint64(n)).astype(np.int64)
    samples = flat[torch.from_numpy(idx)]
    return float((flat * flat).sum()), proj, samples


def store(t, prefix, name, x):
    sq, proj, samples = projections(name, x)
    t[prefix + "sq." + name] = torch.tensor([sq], dtype=torch.float32)
    t[prefix + "proj." + name] = torch.tensor(proj, dtype=torch.float32)
    t[prefix + "samp." + name] = samples.float()


def make_one(name, cfg, B, T, seed):
    # A smaller learning rate than the tiny fixtures': these widths diverge at 1e-2, and a chaotic
    # trajectory would amplify float rounding beyond any useful tolerance.
    o = OrderedDict(mf.OPTIM, max_lr=2e-3, min_lr=2e-4)
    gen = torch.Generator().manual_seed(seed)
    model = ref.LlamaForCausalLM(cfg)
    init_weights(model)
    inputs, targets = mf.make_batch(cfg, B, T, gen)
    model = model.double()

    logits, loss = model(inputs, targets)
    loss.backward()
    grads = OrderedDict((n, p.grad.detach().clone()) for n, p in model.named_parameters())
    model.zero_grad()
    fd_worst = mf.finite_difference_check(model, inputs, targets, gen, n_per_param=1)
    assert logits.std().item() > 0.1, f"{name}: logits too flat (std {logits.std().item()})"

    losses, norms, lrs = mf.train(model, inputs, targets, o)
    final = OrderedDict((n, p.detach().clone()) for n, p in model.named_parameters())
    assert abs(losses[0] - loss.item()) < 1e-12
    assert losses[-1] < 0.9 * losses[0] and all(b < a for a, b in zip(losses, losses[1:])), f"{name}: loss does not go down: {losses}"

    t = OrderedDict()
    t["inputs"] = inputs.to(torch.int32)
    t["targets"] = targets.to(torch.int32)
    t["logits"] = logits.detach().float()
    t["loss"] = torch.tensor([loss.item()], dtype=torch.float32)
    for n, g in grads.items():
        store(t, "g", n, g)
    t["train_losses"] = torch.tensor(losses, dtype=torch.float32)
    t["grad_norms"] = torch.tensor(norms, dtype=torch.float32)
    t["lrs"] = torch.tensor(lrs, dtype=torch.float32)
    for n, p in final.items():
        store(t, "f", n, p)
    init = OrderedDict(rule="hash_uniform", linear_scale=LINEAR_SCALE, norm_jitter=NORM_JITTER,
                       projections=PROJECTIONS, samples=SAMPLES)
    meta = OrderedDict(
        format="llamatrain-reference-fixture", version="2", config=cfg.to_json(), optim=json.dumps(o),
        init=json.dumps(init), batch=str(B), seq=str(T), seed=str(seed), compute_dtype="float64",
        stored_dtype="float32", ignore_index=str(ref.IGNORE_INDEX),
        loss="mean cross-entropy over targets != ignore_index", torch=torch.__version__,
        generator="tools/make_headdim_fixtures.py")
    path = os.path.join(OUT_DIR, name + ".safetensors")
    safetensors_io.save(path, t, meta)
    back, _ = safetensors_io.load(path)
    for n in t:
        assert torch.equal(back[n], t[n]), n
    print(f"{name}: {os.path.getsize(path)} bytes, loss {loss.item():.5f} -> {losses[-1]:.5f}, "
          f"grad norms {['%.3f' % n for n in norms]}, fd worst rel err {fd_worst:.2e}")


def main():
    torch.set_num_threads(2)
    # The published test vectors of FNV-1a 64 and SplitMix64 (the C++ test pins the same).
    assert fnv1a64("a") == 0xAF63DC4C8601EC8C
    assert int(splitmix64(np.array([0], dtype=np.uint64))[0]) == 0xE220A8397B1DCDAF
    for name, (cfg, B, T, seed) in CONFIGS.items():
        make_one(name, cfg, B, T, seed)


if __name__ == "__main__":
    main()
