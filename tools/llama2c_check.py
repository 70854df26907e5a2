"""Check tools/llama_ref.py against a real pretrained model, and write a llama2.c import fixture.

Reads a llama2.c "version 0" checkpoint (7 x int32 header dim, hidden_dim, n_layers, n_heads,
n_kv_heads, vocab_size (negative = untied classifier follows), seq_len; then fp32 arrays
token_embedding, rms_att, wq, wk, wv, wo, rms_ffn, w1, w2, w3, rms_final, freq_cis_real/imag,
[wcls]), maps it to Hugging Face names (q/k rows permuted from Meta's interleaved RoPE pairs to
HF's rotate_half pairs; w1/w3/w2 = gate/up/down), and
  1. greedy-decodes from BOS with the reference model and compares with the known story text
     (karpathy/llama2.c doc/stories260K.md), which validates the reference's RoPE/GQA/norm math;
  2. writes tests/fixtures/stories260K_ref.safetensors: "inputs" I32 [1, T] (BOS + greedy tokens)
     and "logits" F32 [1, T, V] (float64 math), plus the config as metadata.

    /usr/bin/python3 tools/llama2c_check.py [--dir assets/stories260k]
"""
import argparse
import os
import struct
import sys
from collections import OrderedDict

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import llama_ref as ref  # noqa: E402
import safetensors_io  # noqa: E402

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")


def read_llama2c(path):
    raw = open(path, "rb").read()
    dim, hidden, L, nh, nkv, vocab, seq = struct.unpack("<7i", raw[:28])
    tied = vocab > 0
    V = abs(vocab)
    hd = dim // nh
    data = np.frombuffer(raw, dtype="<f4", offset=28)
    pos = 0

    def take(*shape):
        nonlocal pos
        n = int(np.prod(shape))
        t = torch.from_numpy(data[pos:pos + n].astype(np.float32).reshape(shape))
        pos += n
        return t

    emb = take(V, dim)
    rms_att = take(L, dim)
    wq, wk, wv, wo = take(L, dim, dim), take(L, nkv * hd, dim), take(L, nkv * hd, dim), take(L, dim, dim)
    rms_ffn = take(L, dim)
    w1, w2, w3 = take(L, hidden, dim), take(L, dim, hidden), take(L, hidden, dim)
    rms_final = take(dim)
    take(seq, hd // 2), take(seq, hd // 2)  # legacy RoPE tables, unused
    wcls = emb if tied else take(V, dim)
    assert pos == data.size, f"{path}: {data.size - pos} floats left over (wrong header?)"

    cfg = ref.LlamaConfig(hidden_size=dim, intermediate_size=hidden, num_hidden_layers=L,
                          num_attention_heads=nh, num_key_value_heads=nkv, vocab_size=V,
                          max_position_embeddings=seq, rms_norm_eps=1e-5, rope_theta=10000.0,
                          tie_word_embeddings=tied)
    w = OrderedDict()
    w["model.embed_tokens.weight"] = emb
    for i in range(L):
        p = f"model.layers.{i}."
        w[p + "input_layernorm.weight"] = rms_att[i]
        w[p + "self_attn.q_proj.weight"] = ref.meta_to_hf_qk(wq[i], nh)
        w[p + "self_attn.k_proj.weight"] = ref.meta_to_hf_qk(wk[i], nkv)
        w[p + "self_attn.v_proj.weight"] = wv[i]
        w[p + "self_attn.o_proj.weight"] = wo[i]
        w[p + "post_attention_layernorm.weight"] = rms_ffn[i]
        w[p + "mlp.gate_proj.weight"] = w1[i]
        w[p + "mlp.up_proj.weight"] = w3[i]
        w[p + "mlp.down_proj.weight"] = w2[i]
    w["model.norm.weight"] = rms_final
    if not tied:
        w["lm_head.weight"] = wcls
    return cfg, w


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default=os.path.join(ROOT, "assets", "stories260k"),
                    help="folder with stories260K.bin, tok512.model, expected_greedy_t0.txt")
    ap.add_argument("--out", default=os.path.join(ROOT, "tests", "fixtures", "stories260K_ref.safetensors"))
    ap.add_argument("--fixture-len", type=int, default=24, help="tokens stored in the fixture")
    a = ap.parse_args()

    cfg, w = read_llama2c(os.path.join(a.dir, "stories260K.bin"))
    model = ref.LlamaForCausalLM(cfg).double()
    with torch.no_grad():
        for n, p in model.named_parameters():
            p.copy_(w[n].double())

    # Greedy from BOS=1 for 256 steps (run.c default -n 256: one new token per position 0..255),
    # stopping if BOS is produced.
    toks = [1]
    with torch.no_grad():
        while len(toks) < 1 + 256:
            nxt = int(model(torch.tensor([toks]))[0][0, -1].argmax())
            if nxt == 1:
                break
            toks.append(nxt)
    import sentencepiece as spm
    sp = spm.SentencePieceProcessor(model_file=os.path.join(a.dir, "tok512.model"))
    text = sp.decode(toks[1:])
    expected = open(os.path.join(a.dir, "expected_greedy_t0.txt"), encoding="utf-8").read().rstrip("\n")
    assert text == expected, f"greedy text differs:\n{text!r}\nvs\n{expected!r}"

    inputs = torch.tensor([toks[:a.fixture_len]])
    with torch.no_grad():
        logits = model(inputs)[0].float()
    safetensors_io.save(a.out, OrderedDict(inputs=inputs.to(torch.int32), logits=logits),
                        {"config": cfg.to_json(), "source": "stories260K.bin (llama2.c v0, karpathy/tinyllamas)",
                         "compute_dtype": "float64", "torch": torch.__version__,
                         "generator": "tools/llama2c_check.py",
                         "inputs": "BOS=1 followed by the model's greedy tokens"})
    print(f"stories260K: greedy text matches ({len(toks) - 1} tokens); wrote {a.out} "
          f"({os.path.getsize(a.out)} bytes, inputs [1,{inputs.shape[1]}])")


if __name__ == "__main__":
    main()
