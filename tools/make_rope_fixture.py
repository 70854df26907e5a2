"""Generate the RoPE-scaling reference fixtures (tests/fixtures/rope_llama3.safetensors, rope_linear.safetensors).

The same contents as tools/make_fixtures.py writes (initial weights, inputs/targets, logits, loss,
gradients, 10 AdamW steps; see tests/fixtures/README.md) for models whose config.json carries a
rope_scaling object, plus `rope_inv_freq` F32 [head_dim/2]: the scaled inverse frequencies of
tools/llama_ref.py (transformers' llama3 / linear formulas, float64). The llama3 model runs on
sequences longer than its original_max_position_embeddings, and its head size puts rotary pairs in
all three bands (kept, blended, divided by factor), so each branch of the formula matters.
Run from the repo root:

    /usr/bin/python3 tools/make_rope_fixture.py
"""
import dataclasses
import math
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_ref as ref  # noqa: E402
import make_fixtures as mf  # noqa: E402
import safetensors_io  # noqa: E402

LLAMA3 = {"factor": 8.0, "high_freq_factor": 8.0, "low_freq_factor": 1.0,
          "original_max_position_embeddings": 64, "rope_type": "llama3"}
LINEAR = {"factor": 4.0, "rope_type": "linear"}

# name -> (config, batch, seq, seed). T = 80 > original_max_position_embeddings = 64.
CONFIGS = {
    "rope_llama3": (ref.LlamaConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                                    num_attention_heads=2, num_key_value_heads=1, vocab_size=61,
                                    max_position_embeddings=256, rope_theta=500000.0,
                                    rope_scaling=LLAMA3), 2, 80, 1004),
    "rope_linear": (ref.LlamaConfig(hidden_size=48, intermediate_size=80, num_hidden_layers=2,
                                    num_attention_heads=4, num_key_value_heads=2, vocab_size=53,
                                    max_position_embeddings=128, rope_theta=10000.0,
                                    tie_word_embeddings=True, rope_scaling=LINEAR), 2, 40, 1005),
}


def check_bands(cfg):
    """The llama3 config must exercise every branch: some pairs kept, some blended, some scaled."""
    rs = cfg.rope_scaling
    base = 1.0 / (cfg.rope_theta ** (torch.arange(0, cfg.head_dim, 2, dtype=torch.float64) / cfg.head_dim))
    wavelen = 2 * math.pi / base
    old = rs["original_max_position_embeddings"]
    kept = int((wavelen < old / rs["high_freq_factor"]).sum())
    scaled = int((wavelen > old / rs["low_freq_factor"]).sum())
    blended = len(wavelen) - kept - scaled
    assert kept >= 1 and blended >= 2 and scaled >= 2, (kept, blended, scaled)
    f = ref.rope_inv_freq(cfg)
    assert torch.equal(f[:kept], base[:kept]) and torch.allclose(f[-scaled:], base[-scaled:] / rs["factor"])
    return kept, blended, scaled


def scaling_matters(cfg, tensors):
    """The same weights without rope_scaling give logits far outside the tests' 1e-5 tolerance."""
    model = ref.LlamaForCausalLM(dataclasses.replace(cfg, rope_scaling=None))
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.copy_(tensors[n])
    logits, _ = model.double()(tensors["inputs"].long())
    want = tensors["logits"].double()
    rel = ((logits - want).norm() / want.norm()).item()
    assert rel > 1e-3, rel
    return rel


def main():
    torch.set_num_threads(1)
    for name, (cfg, B, T, seed) in CONFIGS.items():
        if cfg.rope_scaling["rope_type"] == "llama3":
            print(f"{name}: rotary pairs kept/blended/scaled = {check_bands(cfg)}, T = {T} > "
                  f"original context {cfg.rope_scaling['original_max_position_embeddings']}")
        mf.GRAD_CLIP[name] = 1.0
        mf.make_one(name, cfg, B, T, seed)
        path = os.path.join(mf.OUT_DIR, name + ".safetensors")
        tensors, meta = safetensors_io.load(path)
        tensors["rope_inv_freq"] = ref.rope_inv_freq(cfg).float()
        meta["generator"] = "tools/make_rope_fixture.py"
        print(f"{name}: logits without rope_scaling differ by {scaling_matters(cfg, tensors):.1e} (norm-wise)")
        safetensors_io.save(path, tensors, meta)


if __name__ == "__main__":
    main()
