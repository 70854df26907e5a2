"""Generate a tiny random Hugging Face Llama checkpoint for the import/export tests.

Writes (run from the repo root with /usr/bin/python3 tools/make_hf_fixture.py):
  tests/fixtures/hf_tiny/config.json, model.safetensors          fp32, one file
  tests/fixtures/hf_tiny_bf16/config.json, model-0000{1,2}-of-00002.safetensors,
                               model.safetensors.index.json      same weights rounded to bf16, two shards
  tests/fixtures/hf_tiny_ref.safetensors                         inputs, reference logits for both
The layout is what transformers' save_pretrained writes (tensor names, index format, "format": "pt"
metadata); logits come from tools/llama_ref.py computed in float64 and stored as fp32.
"""
import json
import os
import sys
from collections import OrderedDict

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_ref as ref  # noqa: E402
import safetensors_io  # noqa: E402

FIX = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")
CFG = ref.LlamaConfig(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                      num_key_value_heads=2, vocab_size=80, max_position_embeddings=128,
                      rms_norm_eps=1e-5, rope_theta=10000.0, tie_word_embeddings=False)
SEED = 2024
B, T = 2, 9


def hf_config(dtype):
    c = OrderedDict(architectures=["LlamaForCausalLM"], model_type="llama", attention_bias=False,
                    attention_dropout=0.0, bos_token_id=1, eos_token_id=2, hidden_act="silu",
                    hidden_size=CFG.hidden_size, initializer_range=0.02,
                    intermediate_size=CFG.intermediate_size, max_position_embeddings=CFG.max_position_embeddings,
                    num_attention_heads=CFG.num_attention_heads, num_hidden_layers=CFG.num_hidden_layers,
                    num_key_value_heads=CFG.num_key_value_heads, pretraining_tp=1, rms_norm_eps=CFG.rms_norm_eps,
                    rope_scaling=None, rope_theta=CFG.rope_theta, tie_word_embeddings=CFG.tie_word_embeddings,
                    torch_dtype=dtype, transformers_version="4.36.2", use_cache=True, vocab_size=CFG.vocab_size)
    return json.dumps(c, indent=2) + "\n"


def logits_of(weights, inputs):
    m = ref.LlamaForCausalLM(CFG).double()
    with torch.no_grad():
        for n, p in m.named_parameters():
            p.copy_(weights[n].double())
        return m(inputs)[0].float()


def main():
    gen = torch.Generator().manual_seed(SEED)
    model = ref.LlamaForCausalLM(CFG)
    # A larger std than training init so the logits are clearly input-dependent.
    ref.init_weights(model, gen, std=0.05)
    w32 = OrderedDict((n, p.detach().clone()) for n, p in model.named_parameters())
    inputs = torch.randint(0, CFG.vocab_size, (B, T), generator=gen)

    d32 = os.path.join(FIX, "hf_tiny")
    os.makedirs(d32, exist_ok=True)
    with open(os.path.join(d32, "config.json"), "w") as f:
        f.write(hf_config("float32"))
    safetensors_io.save(os.path.join(d32, "model.safetensors"), w32, {"format": "pt"})

    # bf16: embedding + layer 0 in shard 1; layer 1, final norm and lm_head in shard 2.
    wbf = OrderedDict((n, t.to(torch.bfloat16)) for n, t in w32.items())
    dbf = os.path.join(FIX, "hf_tiny_bf16")
    os.makedirs(dbf, exist_ok=True)
    with open(os.path.join(dbf, "config.json"), "w") as f:
        f.write(hf_config("bfloat16"))
    files = ["model-00001-of-00002.safetensors", "model-00002-of-00002.safetensors"]
    shard_of = {n: files[0] if (n.startswith("model.embed_tokens") or n.startswith("model.layers.0.")) else files[1]
                for n in wbf}
    for fname in files:
        safetensors_io.save(os.path.join(dbf, fname),
                            OrderedDict((n, t) for n, t in wbf.items() if shard_of[n] == fname), {"format": "pt"})
    index = {"metadata": {"total_size": sum(t.numel() * 2 for t in wbf.values())},
             "weight_map": OrderedDict(sorted(shard_of.items()))}
    with open(os.path.join(dbf, "model.safetensors.index.json"), "w") as f:
        f.write(json.dumps(index, indent=2) + "\n")

    logits = logits_of(w32, inputs)
    logits_bf16 = logits_of(OrderedDict((n, t.float()) for n, t in wbf.items()), inputs)
    assert logits.std() > 0.3 and len(torch.unique(logits.argmax(-1))) > 4, "degenerate logits"
    safetensors_io.save(os.path.join(FIX, "hf_tiny_ref.safetensors"),
                        OrderedDict(inputs=inputs.to(torch.int32), logits=logits, logits_bf16=logits_bf16),
                        {"config": CFG.to_json(), "compute_dtype": "float64", "torch": torch.__version__,
                         "generator": "tools/make_hf_fixture.py",
                         "logits": "from hf_tiny (fp32 weights)",
                         "logits_bf16": "from hf_tiny_bf16 (weights rounded to bf16, math in float64)"})

    # Read-back checks: every tensor present once with the right values.
    back, _ = safetensors_io.load(os.path.join(d32, "model.safetensors"))
    assert all(torch.equal(back[n], w32[n]) for n in w32) and len(back) == len(w32)
    seen = {}
    for fname in files:
        part, meta = safetensors_io.load(os.path.join(dbf, fname))
        assert meta == {"format": "pt"}
        for n, t in part.items():
            assert n not in seen and torch.equal(t, wbf[n]), n
            seen[n] = fname
    assert seen == shard_of
    print(f"hf_tiny: {len(w32)} tensors; logits std {logits.std():.3f}; "
          f"max |logits - logits_bf16| {(logits - logits_bf16).abs().max():.4f}")


if __name__ == "__main__":
    main()
